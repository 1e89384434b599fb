"""Streaming per-feature statistics of paired (FP, compressed) SAE codes, in float64.

Memory is O(d_sae): each batch's means and co-moments are merged into the running totals with
the pairwise update of Chan, Golub & LeVeque, which stays accurate where naive sums of squares
cancel catastrophically.
"""

from dataclasses import dataclass, fields

import torch

from sweep.passes.sparse import Pairs

# The running means and centred co-moments (sums of products of deviations) of paired codes.
MOMENTS = ("mean_x", "mean_y", "m2_x", "m2_y", "c_xy")


def per_slot(keys: torch.Tensor, values: torch.Tensor, size: int) -> torch.Tensor:
    """Sum of `values` per slot `keys` (float64, `size` slots)."""
    return torch.zeros(size, dtype=torch.float64, device=values.device).index_add_(0, keys, values)


def entry_moments(
    keys: torch.Tensor, x: torch.Tensor, y: torch.Tensor, size: int, n: torch.Tensor | int
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Exact centred moments of each slot's `n` tokens (a count, or one per slot) given only the
    entries where x or y is nonzero (slot `keys`); its other tokens are zeros in both codes,
    added in closed form. Also returns each slot's number of such entries."""
    n_union = torch.bincount(keys, minlength=size).double()
    n_zero = n - n_union
    bx, by = per_slot(keys, x, size) / n, per_slot(keys, y, size) / n
    dx, dy = x - bx[keys], y - by[keys]
    moments = {
        "mean_x": bx,
        "mean_y": by,
        "m2_x": per_slot(keys, dx * dx, size) + n_zero * bx * bx,
        "m2_y": per_slot(keys, dy * dy, size) + n_zero * by * by,
        "c_xy": per_slot(keys, dx * dy, size) + n_zero * bx * by,
    }
    return moments, n_union


def chan_merge(
    into: dict[str, torch.Tensor],
    n_into: torch.Tensor | int,
    add: dict[str, torch.Tensor],
    n_add: torch.Tensor | int,
) -> None:
    """Fold moments `add` of `n_add` tokens into `into` (of `n_into` tokens) in place: the
    pairwise update of Chan, Golub & LeVeque. Counts are scalars or broadcast per slot."""
    n_new = n_into + n_add
    delta_x, delta_y = add["mean_x"] - into["mean_x"], add["mean_y"] - into["mean_y"]
    weight = n_into * n_add / n_new
    into["m2_x"] += add["m2_x"] + delta_x * delta_x * weight
    into["m2_y"] += add["m2_y"] + delta_y * delta_y * weight
    into["c_xy"] += add["c_xy"] + delta_x * delta_y * weight
    into["mean_x"] += delta_x * (n_add / n_new)
    into["mean_y"] += delta_y * (n_add / n_new)


@dataclass
class PairStats:
    """Running sufficient statistics over tokens, one entry per feature."""

    n: int
    mean_x: torch.Tensor
    mean_y: torch.Tensor
    m2_x: torch.Tensor
    m2_y: torch.Tensor
    c_xy: torch.Tensor
    max_x: torch.Tensor
    sum_sq_x: torch.Tensor
    sum_sq_diff: torch.Tensor
    active_x: torch.Tensor
    active_y: torch.Tensor
    active_both: torch.Tensor

    @classmethod
    def zeros(cls, d: int, device: torch.device | str = "cpu") -> "PairStats":
        """Empty statistics for `d` features."""
        kw = {"dtype": torch.float64, "device": device}
        counts = {"dtype": torch.int64, "device": device}
        return cls(
            n=0,
            mean_x=torch.zeros(d, **kw),
            mean_y=torch.zeros(d, **kw),
            m2_x=torch.zeros(d, **kw),
            m2_y=torch.zeros(d, **kw),
            c_xy=torch.zeros(d, **kw),
            max_x=torch.full((d,), -torch.inf, **kw),
            sum_sq_x=torch.zeros(d, **kw),
            sum_sq_diff=torch.zeros(d, **kw),
            active_x=torch.zeros(d, **counts),
            active_y=torch.zeros(d, **counts),
            active_both=torch.zeros(d, **counts),
        )

    def moments(self) -> dict[str, torch.Tensor]:
        """The running means and co-moments by name (the tensors themselves, not copies)."""
        return {name: getattr(self, name) for name in MOMENTS}

    def add(self, pairs: Pairs) -> None:
        """Merge one batch given as the union of its nonzero entries (sweep.passes.sparse.Pairs).

        The batch's moments are taken over the entries where either code is nonzero, with the
        all-zero entries added in closed form (`entry_moments`): an exact two-pass (centred)
        computation in float64 at O(nonzeros) cost instead of O(tokens × d).
        """
        nb, d = pairs.n_rows, pairs.d
        if nb == 0:
            return
        cols = pairs.cols
        xv, yv = pairs.x.double(), pairs.y.double()
        batch, n_union = entry_moments(cols, xv, yv, d, nb)
        chan_merge(self.moments(), self.n, batch, nb)
        self.n += nb
        n_zero = nb - n_union  # entries where both codes are 0
        batch_max = torch.where(n_zero > 0, 0.0, -torch.inf).to(torch.float64)
        batch_max.scatter_reduce_(0, cols, xv, reduce="amax")
        self.max_x = torch.maximum(self.max_x, batch_max)
        self.sum_sq_x += per_slot(cols, xv * xv, d)
        self.sum_sq_diff += per_slot(cols, (yv - xv) ** 2, d)
        fx, fy = xv > 0, yv > 0
        self.active_x += torch.bincount(cols[fx], minlength=d)
        self.active_y += torch.bincount(cols[fy], minlength=d)
        self.active_both += torch.bincount(cols[fx & fy], minlength=d)

    def merge(self, other: "PairStats") -> None:
        """Fold another PairStats over disjoint tokens into this one."""
        if other.n == 0:
            return
        chan_merge(self.moments(), self.n, other.moments(), other.n)
        self.n += other.n
        self.max_x = torch.maximum(self.max_x, other.max_x)
        for name in ("sum_sq_x", "sum_sq_diff", "active_x", "active_y", "active_both"):
            getattr(self, name).add_(getattr(other, name))

    def pearson(self) -> torch.Tensor:
        """Per-feature Pearson r: NaN where FP is constant, 0 where only compressed is constant."""
        r = self.c_xy / torch.sqrt(self.m2_x * self.m2_y)
        r = torch.where(self.m2_y == 0, torch.zeros_like(r), r)
        r = torch.where(self.m2_x == 0, torch.full_like(r, torch.nan), r)
        return r.clamp(-1.0, 1.0)

    def to(self, device: torch.device | str) -> "PairStats":
        """A copy on `device` (e.g. CPU before writing results)."""
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        return PairStats(**{k: v.to(device) if torch.is_tensor(v) else v for k, v in moved.items()})
