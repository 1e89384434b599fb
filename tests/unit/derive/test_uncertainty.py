"""The token bootstrap against a brute-force one: the same resamples of the same blocks, every
resample's tokens materialised densely and correlated by scipy, percentiles by numpy."""

import numpy as np
import pytest
import torch
from scipy import stats as sps

from helpers import pairs_from_dense
from sweep.derive.classes import Rules, uncertain
from sweep.derive.convergence import BootstrapPlan, assess, settling
from sweep.derive.uncertainty import (
    BlockSums,
    feature_intervals,
    prefix_order,
    prefix_weights,
    resample_counts,
    resample_indices,
    tally,
)
from sweep.passes.blocks import BlockMoments, block_of_sequence
from sweep.results.summary import PrefixPoint, SurvivalInterval

N_SEQ, ROWS, D, N_BLOCKS, N_BOOT, LEVEL = 14, 9, 10, 6, 300, 0.9
RULES = Rules(min_active=4, survived=0.9, blurred=0.5)


def codes(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """FP codes and compressed codes [N_SEQ × ROWS, D] with planted edge cases."""
    rng = np.random.default_rng(seed)
    x = np.maximum(rng.normal(-0.8, 1.0, (N_SEQ * ROWS, D)), 0) * rng.uniform(0.5, 20, D)
    y = np.maximum(x + rng.normal(0, 1.0, x.shape) * rng.uniform(0, 2, D), 0)
    x[:, 0] = 0.0  # never fires: r undefined everywhere
    y[:, 1] = 0.0  # silenced: r = 0
    x[: 11 * ROWS, 2] = 0.0  # fires only in the last sequences: undefined in many resamples
    y[:, 3] = x[:, 3]  # unchanged: r = 1
    x[:, 4] += 1e3  # dense with a large offset (every token fires)
    y[:, 4] = x[:, 4] + rng.normal(0, 1, N_SEQ * ROWS)
    return x, y


def streamed(x: np.ndarray, y: np.ndarray, batch: int = 4) -> BlockMoments:
    """Block statistics streamed in batches of `batch` sequences, as the pass does."""
    row_block = block_of_sequence(N_SEQ, N_BLOCKS).repeat_interleave(ROWS)
    blocks = BlockMoments.zeros(N_BLOCKS, D)
    for lo in range(0, N_SEQ, batch):
        rows = slice(lo * ROWS, min(lo + batch, N_SEQ) * ROWS)
        pairs = pairs_from_dense(torch.from_numpy(x[rows]), torch.from_numpy(y[rows]))
        blocks.add(pairs, row_block[rows])
    return blocks


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """r with the job's conventions: NaN if FP is constant, 0 if only compressed is."""
    if np.all(x == x[0]):
        return np.nan
    if np.all(y == y[0]):
        return 0.0
    return float(sps.pearsonr(x, y).statistic)


def brute_force(x: np.ndarray, y: np.ndarray, weights_rows: list[np.ndarray]) -> tuple:
    """r [resample, feature] and firing counts from each resample's tokens concatenated."""
    row_block = block_of_sequence(N_SEQ, N_BLOCKS).repeat_interleave(ROWS).numpy()
    r, fired = [], []
    for blocks in weights_rows:
        rows = np.concatenate([np.flatnonzero(row_block == b) for b in blocks])
        xs, ys = x[rows], y[rows]
        r.append([pearson(xs[:, j], ys[:, j]) for j in range(D)])
        fired.append((xs > 0).sum(0))
    return np.array(r), np.array(fired)


def classes(r: np.ndarray, fired: np.ndarray) -> dict[str, np.ndarray]:
    """Per resample: active count, survived, blurred, mean r of the active (NaN left out)."""
    active = fired >= RULES.min_active
    scored = np.nan_to_num(r, nan=-1.0)
    mean = [np.nanmean(np.where(a, row, np.nan)) for row, a in zip(r, active, strict=True)]
    return {
        "n_active": active.sum(1),
        "n_survived": (active & (scored >= 0.9)).sum(1),
        "n_blurred": (active & (scored >= 0.5) & (scored < 0.9)).sum(1),
        "mean_r": np.array(mean),
    }


def test_intervals_equal_a_brute_force_bootstrap() -> None:
    x, y = codes()
    indices = resample_indices(N_BLOCKS, N_BOOT, seed=3)
    sums = BlockSums.of(streamed(x, y))
    cols = np.arange(1, D)
    got = feature_intervals(sums, resample_counts(indices, N_BLOCKS), LEVEL, RULES, cols)
    r, fired = brute_force(x, y, list(indices))
    assert np.isnan(r[:, 2]).any() and not np.isnan(r[:, 2]).all()  # the planted edge case
    for j in cols:
        defined = r[~np.isnan(r[:, j]), j]
        lo, hi = np.percentile(defined, [50 * (1 - LEVEL), 50 * (1 + LEVEL)])
        assert abs(got.r_lo[j] - lo) < 1e-9 and abs(got.r_hi[j] - hi) < 1e-9, j
        assert got.defined[j] == len(defined) / N_BOOT
    assert np.isnan(got.r_lo[0]) and got.r_lo[1] == got.r_hi[1] == 0.0
    want = classes(r, fired)
    t = got.resamples
    for name in ("n_active", "n_survived", "n_blurred"):
        np.testing.assert_array_equal(getattr(t, name), want[name])
    np.testing.assert_allclose(t.mean_r(), want["mean_r"], rtol=0, atol=1e-9)


def test_prefixes_equal_their_blocks_alone() -> None:
    x, y = codes(1)
    sums = BlockSums.of(streamed(x, y, batch=5))
    order = prefix_order(N_BLOCKS, seed=4)
    assert sorted(order) == list(range(N_BLOCKS)) and list(order) != list(range(N_BLOCKS))
    t = tally(sums, prefix_weights(order), RULES, np.arange(D))
    r, fired = brute_force(x, y, [order[: k + 1] for k in range(N_BLOCKS)])
    want = classes(r, fired)
    for name in ("n_active", "n_survived", "n_blurred"):
        np.testing.assert_array_equal(getattr(t, name), want[name])
    np.testing.assert_allclose(t.mean_r(), want["mean_r"], rtol=0, atol=1e-9)


def test_an_unchanged_model_has_every_interval_at_one() -> None:
    x, _ = codes(2)
    counts = resample_counts(resample_indices(N_BLOCKS, N_BOOT, 0), N_BLOCKS)
    got = feature_intervals(BlockSums.of(streamed(x, x)), counts, LEVEL, RULES, np.arange(1, D))
    assert (got.r_lo[1:] == 1.0).all() and (got.r_hi[1:] == 1.0).all()


def test_uncertain_means_the_widened_interval_straddles_a_threshold() -> None:
    cases = [  # (r, r_lo, r_hi, active, uncertain)
        (0.95, 0.91, 0.99, True, False),  # survived, interval above 0.9
        (0.95, 0.89, 0.97, True, True),  # interval straddles 0.9
        (0.88, 0.80, 0.90, True, True),  # reaches 0.9: survived is inside
        (0.60, 0.51, 0.89, True, False),  # blurred, interval within the blurred band
        (0.60, 0.45, 0.70, True, True),  # straddles 0.5
        (0.30, 0.10, 0.49, False, False),  # inactive features are never uncertain
        (0.89, 0.91, 0.96, True, True),  # r itself below its interval, across 0.9
        (0.40, np.nan, np.nan, True, False),  # no interval (bootstrap off): not uncertain
    ]
    r, lo, hi, active, want = (np.array(c) for c in zip(*cases, strict=True))
    assert uncertain(r, lo, hi, active.astype(bool), RULES).tolist() == want.tolist()


def point(tokens: int, survived: float, mean_r: float) -> PrefixPoint:
    return PrefixPoint(
        n_sequences=tokens // 10,
        n_tokens=tokens,
        n_active=100,
        frac_survived=survived,
        frac_blurred=1 - survived,
        frac_destroyed=0.0,
        mean_r=mean_r,
    )


def interval(lo: float, hi: float) -> SurvivalInterval:
    return SurvivalInterval(
        frac_survived_lo=lo,
        frac_survived_hi=hi,
        frac_survived_resampled=(lo + hi) / 2,
        mean_r_lo=0.9,
        mean_r_hi=0.92,
        mean_r_resampled=0.91,
    )


@pytest.mark.parametrize(
    "half, settled", [(0.94, True), (0.959, True), (0.961, False), (0.90, False)]
)
def test_settled_when_half_the_tokens_lie_within_the_half_width(half, settled) -> None:
    points = [point(100, 0.5, 0.91), point(500, half, 0.91), point(1000, 0.95, 0.91)]
    got, note = settling(points, interval(0.94, 0.96))
    assert got is settled
    assert note.startswith("settled" if settled else "not settled: survival moved")


def test_settling_is_not_checked_without_a_bootstrap() -> None:
    assert settling([point(100, 0.9, 0.9), point(200, 0.9, 0.9)], None)[0] is None


def test_assess_without_resamples_still_gives_the_prefixes() -> None:
    x, y = codes()
    blocks = {"hook": streamed(x, y)}
    plan = BootstrapPlan(np.bincount(block_of_sequence(N_SEQ, N_BLOCKS)).tolist(), ROWS, 0, 0.95, 0)
    intervals, record = assess(blocks, plan, None, RULES)
    assert intervals == {} and record.job is None and record.settled is None
    assert record.convergence[-1].n_tokens == N_SEQ * ROWS
