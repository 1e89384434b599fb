"""Sparse SAE codes in the measurement passes: a dense code batch becomes its nonzero entries
once, through one reusable mask, and is merged with the FP reference's stored entries, so
per-feature work costs O(nonzeros), never O(tokens × d_sae)."""

from dataclasses import dataclass

import numpy as np
import torch


def numpy_ready(x: torch.Tensor) -> bool:
    """Whether numpy can work on `x` in place: a CPU tensor of a dtype numpy has."""
    return x.device.type == "cpu" and x.dtype != torch.bfloat16


class NonzeroFinder:
    """Flat indices (row-major) of the nonzero entries of dense code batches, in increasing
    order, through one boolean mask allocated once and reused for every batch: no fresh
    O(tokens × d_sae) allocation per batch. On CPU numpy's vectorised compare and flatnonzero
    do the scan."""

    def __init__(self) -> None:
        self._mask: torch.Tensor | None = None

    def __call__(self, codes: torch.Tensor, exclude: torch.Tensor | None = None) -> torch.Tensor:
        """Flat indices of `codes`' nonzero entries, leaving out the flat indices `exclude`."""
        n = codes.numel()
        if self._mask is None or self._mask.numel() < n or self._mask.device != codes.device:
            self._mask = torch.empty(n, dtype=torch.bool, device=codes.device)
        mask = self._mask[:n]
        if numpy_ready(codes):
            np.not_equal(codes.numpy(), 0, out=mask.view(codes.shape).numpy())
        else:
            torch.ne(codes, 0, out=mask.view(codes.shape))
        if exclude is not None:
            mask[exclude] = False
        if mask.device.type == "cpu":
            return torch.from_numpy(np.flatnonzero(mask.numpy()))
        return mask.nonzero().squeeze(1)


@dataclass
class Pairs:
    """The union of two code batches' nonzero entries: per entry its row in the batch, its
    feature, the FP code `x` and the compressed code `y` (either may be 0, never both)."""

    rows: torch.Tensor
    cols: torch.Tensor
    x: torch.Tensor
    y: torch.Tensor
    n_rows: int
    d: int

    @classmethod
    def merge(
        cls,
        fp_flat: torch.Tensor,
        fp_values: torch.Tensor,
        q: torch.Tensor,
        finder: NonzeroFinder,
    ) -> "Pairs":
        """Pair stored FP entries (flat indices into the batch, values) with dense compressed
        codes `q` [rows, d]: q is read at the FP entries, and its other nonzeros are added."""
        n_rows, d = q.shape
        q_flat = q.reshape(-1)
        q_only = finder(q, exclude=fp_flat)
        flat = torch.cat([fp_flat, q_only])
        x = torch.cat([fp_values.to(q.dtype), q_flat.new_zeros(len(q_only))])
        y = torch.cat([q_flat[fp_flat], q_flat[q_only]])
        return cls(flat // d, flat % d, x, y, n_rows, d)
