"""How sure each r is: a block bootstrap over whole sequences, from the per-block co-moments the
measurement pass kept (sweep.passes.blocks), and survival over nested prefixes of the token set.

Any weighting of the blocks (a resample draws each block a whole number of times; a prefix takes
the first k blocks once) combines their moments exactly, for every feature at once: a
[weightings, blocks] matrix times [blocks, features] sums about a pivot (the feature's mean over
all tokens), so the sums stay small and never cancel catastrophically. Work and memory go by
chunks of features: O(weightings × chunk), never O(tokens × d_sae).
"""

from dataclasses import dataclass, field

import numpy as np

from sweep.derive.classes import Rules
from sweep.passes.blocks import BlockMoments

CHUNK_ENTRIES = 1 << 21  # float64 entries per [weightings, features] array (16 MiB)


@dataclass
class BlockSums:
    """Per block and feature, the sums a weighting combines linearly (float64 numpy): tokens,
    deviations of the block means from the pivot times the block's tokens, second moments
    about the pivot, and firing counts."""

    n: np.ndarray  # [blocks]
    sx: np.ndarray  # [blocks, d]
    sy: np.ndarray
    qx: np.ndarray
    qy: np.ndarray
    qxy: np.ndarray
    fx: np.ndarray  # FP firing tokens
    fy: np.ndarray  # compressed firing tokens

    @classmethod
    def of(cls, blocks: BlockMoments) -> "BlockSums":
        """Sums of a pass's block moments, about each feature's mean over every token."""
        b = blocks.cpu()
        n = b.n.numpy()
        mx, my = b.mean_x.numpy(), b.mean_y.numpy()
        total = n.sum()
        dx = mx - (n @ mx) / total
        dy = my - (n @ my) / total
        w = n[:, None]
        return cls(
            n=n,
            sx=w * dx,
            sy=w * dy,
            qx=b.m2_x.numpy() + w * dx * dx,
            qy=b.m2_y.numpy() + w * dy * dy,
            qxy=b.c_xy.numpy() + w * dx * dy,
            fx=b.active_x.numpy().astype(np.float64),
            fy=b.active_y.numpy().astype(np.float64),
        )

    def combine(self, weights: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """r and FP firing count of features `cols` under each weighting of the blocks (rows
        of `weights`): NaN where FP never fires (constant), 0 where the compressed code never
        fires (silenced), as PairStats.pearson on the tokens themselves."""
        n = weights @ self.n
        sx, sy = weights @ self.sx[:, cols], weights @ self.sy[:, cols]
        inv = (1.0 / n)[:, None]
        m2x = weights @ self.qx[:, cols] - sx * sx * inv
        m2y = weights @ self.qy[:, cols] - sy * sy * inv
        cxy = weights @ self.qxy[:, cols] - sx * sy * inv
        fired_x, fired_y = weights @ self.fx[:, cols], weights @ self.fy[:, cols]
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.clip(cxy / np.sqrt(m2x * m2y), -1.0, 1.0)
        r = np.where((fired_y == 0) | (m2y <= 0), 0.0, r)
        r = np.where((fired_x == 0) | (m2x <= 0), np.nan, r)
        return r, fired_x


@dataclass
class Tally:
    """Class counts of the features active under each weighting (one entry per weighting)."""

    n_active: np.ndarray
    n_survived: np.ndarray
    n_blurred: np.ndarray
    sum_r: np.ndarray  # over active features with a defined r
    n_r: np.ndarray

    @classmethod
    def zeros(cls, m: int) -> "Tally":
        """Empty counts for m weightings."""
        return cls(*(np.zeros(m) for _ in range(5)))

    def add(self, r: np.ndarray, fired: np.ndarray, rules: Rules) -> None:
        """Count one chunk of features: active where they fire on ≥ min_active tokens; an
        undefined r counts as destroyed and is left out of the mean, as for the job's own."""
        active = fired >= rules.min_active
        scored = np.nan_to_num(r, nan=-1.0)
        self.n_active += active.sum(1)
        self.n_survived += (active & (scored >= rules.survived)).sum(1)
        self.n_blurred += (active & (scored >= rules.blurred) & (scored < rules.survived)).sum(1)
        defined = active & ~np.isnan(r)
        self.sum_r += np.where(defined, r, 0.0).sum(1)
        self.n_r += defined.sum(1)

    def merge(self, other: "Tally") -> None:
        """Add another SAE's counts over the same weightings."""
        for name in vars(self):
            getattr(self, name).__iadd__(getattr(other, name))

    def frac_survived(self) -> np.ndarray:
        """Survived / active per weighting (NaN where none is active)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.n_survived / self.n_active

    def mean_r(self) -> np.ndarray:
        """Mean r of the active features per weighting (NaN where none)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.sum_r / self.n_r


@dataclass
class FeatureIntervals:
    """Each feature's percentile interval of r over the resamples in which its FP code varies
    (NaN where that is none), and the fraction of resamples in which it does."""

    r_lo: np.ndarray
    r_hi: np.ndarray
    defined: np.ndarray
    resamples: Tally = field(default_factory=lambda: Tally.zeros(0))


def resample_indices(n_blocks: int, n_boot: int, seed: int) -> np.ndarray:
    """[n_boot, n_blocks] block indices drawn with replacement (seeded): resample i is the
    concatenation of blocks indices[i] in order."""
    return np.random.default_rng(seed).integers(0, n_blocks, size=(n_boot, n_blocks))


def resample_counts(indices: np.ndarray, n_blocks: int) -> np.ndarray:
    """How many times each resample draws each block: [n_boot, n_blocks] float64."""
    counts = np.zeros((len(indices), n_blocks))
    np.add.at(counts, (np.arange(len(indices))[:, None], indices), 1.0)
    return counts


def prefix_order(n_blocks: int, seed: int) -> np.ndarray:
    """The order in which nested prefixes take the blocks: a seeded shuffle, so each prefix is
    a random subset of whole blocks and a curve over prefixes follows the number of tokens,
    not the order of the text (documents differ along it)."""
    return np.random.default_rng([seed, 1]).permutation(n_blocks)


def prefix_weights(order: np.ndarray) -> np.ndarray:
    """Row k takes blocks order[0..k] once: the nested prefixes of the token set."""
    weights = np.zeros((len(order), len(order)))
    for k in range(len(order)):
        weights[k, order[: k + 1]] = 1.0
    return weights


def percentiles(r: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column, numpy's linear-interpolation percentiles (1 − level)/2 and (1 + level)/2 of
    its non-NaN entries, and the fraction of entries that are not NaN."""
    ordered = np.sort(r, axis=0)  # NaN last
    count = (~np.isnan(r)).sum(0)
    cols = np.arange(r.shape[1])
    bounds = []
    for q in ((1 - level) / 2, (1 + level) / 2):
        pos = q * np.maximum(count - 1, 0)
        below = np.floor(pos).astype(np.int64)
        above = np.minimum(below + 1, np.maximum(count - 1, 0))
        frac = pos - below
        a, b = ordered[below, cols], ordered[above, cols]
        bounds.append(np.where(count > 0, a + frac * (b - a), np.nan))
    return bounds[0], bounds[1], count / r.shape[0]


def _chunks(cols: np.ndarray, m: int):
    size = max(1, CHUNK_ENTRIES // max(m, 1))
    for start in range(0, len(cols), size):
        yield cols[start : start + size]


def feature_intervals(
    sums: BlockSums, counts: np.ndarray, level: float, rules: Rules, cols: np.ndarray
) -> FeatureIntervals:
    """Percentile intervals of r for features `cols` (the others NaN) from the resamples
    `counts` [n_boot, n_blocks], and the class counts of every resample (its own active set)."""
    d = sums.sx.shape[1]
    out = FeatureIntervals(np.full(d, np.nan), np.full(d, np.nan), np.zeros(d))
    out.resamples = Tally.zeros(len(counts))
    for chunk in _chunks(cols, len(counts)):
        r, fired = sums.combine(counts, chunk)
        out.r_lo[chunk], out.r_hi[chunk], out.defined[chunk] = percentiles(r, level)
        out.resamples.add(r, fired, rules)
    return out


def tally(sums: BlockSums, weights: np.ndarray, rules: Rules, cols: np.ndarray) -> Tally:
    """Class counts under each weighting (e.g. the prefixes) over features `cols`."""
    out = Tally.zeros(len(weights))
    for chunk in _chunks(cols, len(weights)):
        out.add(*sums.combine(weights, chunk), rules)
    return out


def interval(values: np.ndarray, level: float) -> tuple[float, float]:
    """The percentile interval of a statistic over resamples (NaN resamples left out)."""
    lo, hi, _ = percentiles(values[:, None], level)
    return float(lo[0]), float(hi[0])
