"""Streaming per-feature statistics of paired (FP, compressed) SAE codes, in float64.

Memory is O(d_sae): each batch's means and co-moments are merged into the running totals with
the pairwise update of Chan, Golub & LeVeque, which stays accurate where naive sums of squares
cancel catastrophically.
"""

from dataclasses import dataclass, fields

import torch

from sweep.passes.sparse import Pairs


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

    def add(self, pairs: Pairs) -> None:
        """Merge one batch given as the union of its nonzero entries (sweep.passes.sparse.Pairs).

        The batch's moments are taken over the entries where either code is nonzero, with the
        all-zero entries added in closed form: an exact two-pass (centred) computation in
        float64 at O(nonzeros) cost instead of O(tokens × d).
        """
        nb, d = pairs.n_rows, pairs.d
        if nb == 0:
            return
        cols = pairs.cols
        xv, yv = pairs.x.double(), pairs.y.double()

        def per_feature(values: torch.Tensor) -> torch.Tensor:
            return torch.zeros(d, dtype=torch.float64, device=xv.device).index_add_(0, cols, values)

        n_union = torch.bincount(cols, minlength=d).double()
        n_zero = nb - n_union  # entries where both codes are 0
        bx, by = per_feature(xv) / nb, per_feature(yv) / nb
        dx, dy = xv - bx[cols], yv - by[cols]
        m2x = per_feature(dx * dx) + n_zero * bx * bx
        m2y = per_feature(dy * dy) + n_zero * by * by
        cxy = per_feature(dx * dy) + n_zero * bx * by
        n_new = self.n + nb
        delta_x, delta_y = bx - self.mean_x, by - self.mean_y
        weight = self.n * nb / n_new
        self.m2_x += m2x + delta_x * delta_x * weight
        self.m2_y += m2y + delta_y * delta_y * weight
        self.c_xy += cxy + delta_x * delta_y * weight
        self.mean_x += delta_x * (nb / n_new)
        self.mean_y += delta_y * (nb / n_new)
        self.n = n_new
        batch_max = torch.where(n_zero > 0, 0.0, -torch.inf).to(torch.float64)
        batch_max.scatter_reduce_(0, cols, xv, reduce="amax")
        self.max_x = torch.maximum(self.max_x, batch_max)
        self.sum_sq_x += per_feature(xv * xv)
        self.sum_sq_diff += per_feature((yv - xv) ** 2)
        fx, fy = xv > 0, yv > 0
        self.active_x += torch.bincount(cols[fx], minlength=d)
        self.active_y += torch.bincount(cols[fy], minlength=d)
        self.active_both += torch.bincount(cols[fx & fy], minlength=d)

    def merge(self, other: "PairStats") -> None:
        """Fold another PairStats over disjoint tokens into this one."""
        if other.n == 0:
            return
        n_new = self.n + other.n
        delta_x, delta_y = other.mean_x - self.mean_x, other.mean_y - self.mean_y
        weight = self.n * other.n / n_new
        self.m2_x += other.m2_x + delta_x * delta_x * weight
        self.m2_y += other.m2_y + delta_y * delta_y * weight
        self.c_xy += other.c_xy + delta_x * delta_y * weight
        self.mean_x += delta_x * (other.n / n_new)
        self.mean_y += delta_y * (other.n / n_new)
        self.n = n_new
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
