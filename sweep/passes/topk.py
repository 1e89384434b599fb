"""Exact row-wise top-k over a large last dimension: the FP reference's top-k log-probabilities.

torch.topk on CPU selects in every row on its own at a few ns per entry: over a 50k vocabulary
about as much as the log-softmax, over a 2k one several times it (k = 128). Here each row of
width V is cut into G ≥ k strided groups (entries j, j + G, j + 2G, …); the k groups with the
largest maxima hold every entry of the row's top k (an entry outside them is at most the k-th
largest group maximum, which is at most the k-th largest entry), so the top k are selected
among those k · V/G entries (plus the ragged tail). The group maxima are one vectorised pass;
numpy's introselect makes both selections. The values equal torch.topk's; so do the indices,
but for the order among equal values, which torch.topk leaves unspecified too.
"""

import math

import numpy as np
import torch

from sweep.passes.sparse import numpy_ready


def group_size(width: int, k: int) -> int:
    """Entries per group: near √(width / k), which balances the two selections' sizes, and a
    divisor of the width when one is near (no ragged tail to append)."""
    target = max(1, round(math.sqrt(width / k)))
    near = [c for c in range(max(1, target // 2), 2 * target + 1) if width % c == 0]
    return min(near, key=lambda c: abs(c - target)) if near else target


def _largest(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest entries along the last axis, in no particular order."""
    return np.argpartition(values, values.shape[-1] - k, axis=-1)[..., -k:]


def row_topk(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(values, int64 indices) of the k largest entries of each row of `x` [..., V], sorted
    descending, as torch.topk; CPU tensors of a last dimension ≥ 4k take the blocked path."""
    width = x.shape[-1]
    k = min(k, width)
    if not numpy_ready(x) or width < 4 * k or x.numel() == 0:
        return x.topk(k, dim=-1)
    x = x.detach()
    c = group_size(width, k)
    n_groups = width // c
    groups = x[..., : n_groups * c].unflatten(-1, (c, n_groups))  # (i, j) = x[..., i·G + j]
    chosen = torch.from_numpy(_largest(groups.amax(dim=-2).numpy(), k))  # [..., k]
    candidates = groups.gather(-1, chosen.unsqueeze(-2).expand(*chosen.shape[:-1], c, k))
    candidates = candidates.flatten(-2)  # entry i·k + m is x[..., i·G + chosen[m]]
    if n_groups * c < width:
        candidates = torch.cat([candidates, x[..., n_groups * c :]], dim=-1)
    pick = torch.from_numpy(_largest(candidates.numpy(), k))
    values, order = candidates.gather(-1, pick).sort(dim=-1, descending=True)
    pick = pick.gather(-1, order)
    grouped = pick < c * k
    index = (pick // k) * n_groups + chosen.gather(-1, pick % k)
    return values, torch.where(grouped, index, pick - c * k + n_groups * c)
