"""A job's token bootstrap and convergence, assembled: every feature's r interval per SAE, the
intervals of its survival fraction and mean r, the numbers on nested prefixes of the token set,
and whether they have settled (survival.bootstrap; docs/uncertainty.md)."""

from dataclasses import dataclass

import numpy as np

from sweep.derive.classes import Rules
from sweep.derive.uncertainty import (
    BlockSums,
    FeatureIntervals,
    Tally,
    feature_intervals,
    interval,
    prefix_order,
    prefix_weights,
    resample_counts,
    resample_indices,
    tally,
)
from sweep.passes.blocks import BlockMoments
from sweep.results.summary import PrefixPoint, SurvivalInterval, Uncertainty


@dataclass(frozen=True)
class BootstrapPlan:
    """What the bootstrap draws: blocks (sequences per block, tokens per sequence), resamples,
    level and seed."""

    sequences_per_block: list[int]
    rows_per_sequence: int
    n_boot: int
    level: float
    seed: int

    @property
    def n_blocks(self) -> int:
        """How many blocks."""
        return len(self.sequences_per_block)

    @property
    def on(self) -> bool:
        """Whether there is anything to resample (≥ 1 resample of ≥ 2 blocks)."""
        return self.n_boot > 0 and self.n_blocks >= 2

    def order(self) -> np.ndarray:
        """The order in which the prefixes take the blocks (seeded shuffle)."""
        return prefix_order(self.n_blocks, self.seed)

    def counts(self) -> np.ndarray:
        """The resamples as block counts [n_boot, n_blocks] (seeded)."""
        indices = resample_indices(self.n_blocks, self.n_boot, self.seed)
        return resample_counts(indices, self.n_blocks)


def _measured(sums: BlockSums) -> np.ndarray:
    """Features whose FP code varies over the whole token set (r defined)."""
    return np.flatnonzero(sums.fx.sum(0) > 0)


def intervals_of(
    blocks: dict[str, BlockMoments], plan: BootstrapPlan, counts: np.ndarray, rules: Rules
) -> dict[str, FeatureIntervals]:
    """Each SAE's feature intervals and resample tallies (the same resamples for all)."""
    out = {}
    for hook, b in blocks.items():
        sums = BlockSums.of(b)
        out[hook] = feature_intervals(sums, counts, plan.level, rules, _measured(sums))
    return out


def _survival_interval(t: Tally, level: float) -> SurvivalInterval:
    survived, mean_r = t.frac_survived(), t.mean_r()
    lo, hi = interval(survived, level)
    r_lo, r_hi = interval(mean_r, level)
    return SurvivalInterval(
        frac_survived_lo=lo,
        frac_survived_hi=hi,
        frac_survived_resampled=float(np.nanmean(survived)),
        mean_r_lo=r_lo,
        mean_r_hi=r_hi,
        mean_r_resampled=float(np.nanmean(mean_r)),
    )


def prefix_points(blocks: dict[str, BlockMoments], plan: BootstrapPlan, rules: Rules):
    """The job's numbers (over every SAE) on each prefix of whole blocks, in `plan.order()`."""
    order = plan.order()
    total = Tally.zeros(plan.n_blocks)
    for b in blocks.values():
        sums = BlockSums.of(b)
        total.merge(tally(sums, prefix_weights(order), rules, _measured(sums)))
    sequences = np.cumsum(np.asarray(plan.sequences_per_block)[order])
    with np.errstate(invalid="ignore", divide="ignore"):
        blurred = total.n_blurred / total.n_active
        destroyed = (total.n_active - total.n_survived - total.n_blurred) / total.n_active
    survived = total.frac_survived()
    return [
        PrefixPoint(
            n_sequences=int(sequences[k]),
            n_tokens=int(sequences[k]) * plan.rows_per_sequence,
            n_active=int(total.n_active[k]),
            frac_survived=float(survived[k]),
            frac_blurred=float(blurred[k]),
            frac_destroyed=float(destroyed[k]),
            mean_r=float(total.mean_r()[k]),
        )
        for k in range(plan.n_blocks)
    ]


def settling(points: list[PrefixPoint], job: SurvivalInterval | None) -> tuple[bool | None, str]:
    """Whether survival and mean r at about half the tokens lie within the half-width of their
    interval from the full token set's; and one line that says so."""
    if job is None or len(points) < 2:
        return None, "not checked: no token bootstrap (survival.bootstrap.n_boot=0 or 1 block)"
    full = points[-1]
    half = min(points[:-1], key=lambda p: abs(p.n_tokens - full.n_tokens / 2))
    moved = []
    for what, value, lo, hi, scale, unit in (
        ("survival", "frac_survived", job.frac_survived_lo, job.frac_survived_hi, 100, " points"),
        ("mean r", "mean_r", job.mean_r_lo, job.mean_r_hi, 1, ""),
    ):
        a, b = getattr(half, value), getattr(full, value)
        if abs(b - a) > (hi - lo) / 2:
            moved.append(
                f"{what} moved {scale * abs(b - a):.3g}{unit} from {half.n_tokens:,} to "
                f"{full.n_tokens:,} tokens, more than its interval's half-width "
                f"{scale * (hi - lo) / 2:.3g}"
            )
    if moved:
        return False, "not settled: " + "; ".join(moved) + " (measure more tokens)"
    return True, (
        f"settled: survival and mean r at {half.n_tokens:,} tokens are within their "
        f"intervals' half-widths of those at {full.n_tokens:,}"
    )


def assess(
    blocks: dict[str, BlockMoments], plan: BootstrapPlan, counts: np.ndarray, rules: Rules
) -> tuple[dict[str, FeatureIntervals], Uncertainty]:
    """One variant's feature intervals per SAE and its Uncertainty record."""
    intervals = intervals_of(blocks, plan, counts, rules) if plan.on else {}
    job, per_sae = None, {}
    if intervals:
        total = Tally.zeros(plan.n_boot)
        for hook, fi in intervals.items():
            per_sae[hook] = _survival_interval(fi.resamples, plan.level)
            total.merge(fi.resamples)
        job = _survival_interval(total, plan.level)
    points = prefix_points(blocks, plan, rules)
    settled, note = settling(points, job)
    return intervals, Uncertainty(
        n_blocks=plan.n_blocks,
        sequences_per_block=list(plan.sequences_per_block),
        n_boot=plan.n_boot if plan.on else 0,
        level=plan.level,
        seed=plan.seed,
        job=job,
        per_sae=per_sae,
        prefix_order=plan.order().tolist(),
        convergence=points,
        settled=settled,
        settle_note=note,
    )
