"""Unstructured magnitude pruning with exact counts and deterministic tie-breaking."""

import math
from collections.abc import Iterator, Sequence
from numbers import Real

import torch

from sweep.base.errors import QfeatError
from sweep.compressors.registry import COMPRESSORS, Layers, weight_method
from sweep.config.compression import SCOPES, MagnitudeConfig

# Bit pattern of float32 +inf: non-negative float32 values sort like their int32 bit patterns.
_INF_BITS = 0x7F800000
_N_HIGH = (_INF_BITS >> 16) + 1


def check_sparsity(sparsity: float, scope: str) -> None:
    """Raise unless 0 ≤ sparsity < 1 is a real number and scope is 'matrix' or 'global'."""
    if isinstance(sparsity, bool) or not isinstance(sparsity, Real):
        raise QfeatError(f"pruning sparsity must be a number in [0, 1), got {sparsity!r}")
    if not (math.isfinite(float(sparsity)) and 0.0 <= float(sparsity) < 1.0):
        raise QfeatError(f"pruning sparsity must be in [0, 1), got {sparsity}")
    if scope not in SCOPES:
        raise QfeatError(f"unknown pruning scope {scope!r}; choose one of {list(SCOPES)}")


def n_pruned(numel: int, sparsity: float) -> int:
    """How many entries a sparsity prunes out of `numel`: round(sparsity × numel)."""
    return min(numel, round(float(sparsity) * numel))


def _magnitude(weight: torch.Tensor) -> torch.Tensor:
    """|w| flattened, in float32 (so ranking is dtype-independent); NaN weights are an error."""
    mag = weight.detach().reshape(-1).float().abs()
    if torch.isnan(mag).any():
        raise QfeatError("cannot magnitude-prune a weight matrix that contains NaN")
    return mag


def _keep(mag: torch.Tensor, value: torch.Tensor, n_ties: int) -> torch.Tensor:
    """Keep |w| > value, and the ties |w| == value after the first `n_ties` (by flat index)."""
    keep = mag > value
    ties = torch.nonzero(mag == value).squeeze(1)
    keep[ties[n_ties:]] = True
    return keep


def _matrix_masks(weights: Sequence[torch.Tensor], sparsity: float) -> Iterator[torch.Tensor]:
    for weight in weights:
        mag = _magnitude(weight)
        k = n_pruned(mag.numel(), sparsity)
        if k == 0:
            yield torch.ones_like(weight, dtype=torch.bool)
            continue
        value = torch.kthvalue(mag, k).values
        n_ties = k - int((mag < value).sum())
        yield _keep(mag, value, n_ties).reshape(weight.shape)


def _bits(weight: torch.Tensor) -> torch.Tensor:
    """|w| as float32 bit patterns (int32): for non-negative floats they sort like the values."""
    return weight.detach().reshape(-1).float().abs().view(torch.int32)


def _select(counts: torch.Tensor, k: int) -> tuple[int, int]:
    """The first bin whose cumulative count reaches k, and how many entries lie below it."""
    cum = counts.cumsum(0)
    b = int(torch.searchsorted(cum, torch.tensor([k], dtype=cum.dtype)).item())
    return b, int(cum[b - 1]) if b > 0 else 0


def _global_masks(weights: Sequence[torch.Tensor], sparsity: float) -> Iterator[torch.Tensor]:
    total = sum(w.numel() for w in weights)
    k = n_pruned(total, sparsity)
    if k == 0:
        for weight in weights:
            yield torch.ones_like(weight, dtype=torch.bool)
        return
    for weight in weights:
        _magnitude(weight)  # NaN check, once
    # Exact k-th smallest |w| over all matrices without concatenating them (memory stays
    # O(one matrix)): a histogram of the high 16 bits of the float32 pattern, then of the
    # low 16 bits inside the selected high bin. Integer counts, so the result is exact.
    high = sum(
        torch.bincount(_bits(w) >> 16, minlength=_N_HIGH).cpu() for w in weights if w.numel()
    )
    b_high, below = _select(high, k)
    low = sum(
        torch.bincount(b[(b >> 16) == b_high] & 0xFFFF, minlength=1 << 16).cpu()
        for b in (_bits(w) for w in weights if w.numel())
    )
    b_low, below_low = _select(low, k - below)
    value_bits = (b_high << 16) | b_low
    n_ties = k - below - below_low
    for weight in weights:
        mag = _magnitude(weight)
        value = torch.tensor(value_bits, dtype=torch.int32).view(torch.float32).to(mag.device)
        keep = _keep(mag, value, n_ties)
        n_ties = max(0, n_ties - int((mag == value).sum()))
        yield keep.reshape(weight.shape)


def iter_masks(
    weights: Sequence[torch.Tensor], sparsity: float, scope: str = "matrix"
) -> Iterator[torch.Tensor]:
    """Keep-masks one matrix at a time, so callers need not hold every mask at once."""
    check_sparsity(sparsity, scope)
    weights = list(weights)
    if scope == "matrix":
        return _matrix_masks(weights, sparsity)
    return _global_masks(weights, sparsity)


def magnitude_masks(
    weights: Sequence[torch.Tensor], sparsity: float, scope: str = "matrix"
) -> list[torch.Tensor]:
    """Boolean keep-masks (True = keep) pruning exactly round(sparsity × numel) smallest |w|.

    scope="matrix" prunes that many per matrix; scope="global" prunes round(sparsity × total)
    over all matrices together. Ties at the cut are pruned in order of (matrix position in the
    list, flat index), so the count is exact and the result deterministic. Pre-existing zeros
    are the smallest magnitudes and count towards the pruned entries.
    """
    return list(iter_masks(weights, sparsity, scope))


def prune_(weights: Sequence[torch.Tensor], sparsity: float, scope: str = "matrix") -> int:
    """Zero the pruned entries of `weights` in place; returns how many entries were masked."""
    weights = list(weights)
    masked = 0
    with torch.no_grad():
        for weight, keep in zip(weights, iter_masks(weights, sparsity, scope), strict=True):
            weight.masked_fill_(~keep, 0)
            masked += int((~keep).sum())
    return masked


def magnitude_layers(layers: Layers, cfg: MagnitudeConfig) -> None:
    """Unstructured magnitude pruning of the target weights to `cfg.sparsity` (matrix or
    global); the matched search prunes with it at each sparsity it tries."""
    prune_([layer.weight for _, layer in layers], cfg.sparsity, cfg.scope)


COMPRESSORS.register("magnitude")(weight_method(magnitude_layers))
