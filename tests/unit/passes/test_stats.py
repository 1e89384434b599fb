"""Streaming per-feature statistics against scipy and numpy on the whole data at once."""

import numpy as np
import pytest
import torch
from scipy import stats as sps

from helpers import pairs_from_dense, update_stats
from sweep.passes.reference import SparseCodes
from sweep.passes.sparse import NonzeroFinder, Pairs
from sweep.passes.stats import PairStats


def paired_codes(n: int = 997, d: int = 9) -> tuple[np.ndarray, np.ndarray]:
    """ReLU-like FP codes and a noisy compressed copy, with planted edge-case features."""
    rng = np.random.default_rng(1)
    x = np.maximum(rng.normal(-0.5, 1.0, (n, d)), 0) * rng.uniform(0.5, 50, d)
    y = np.maximum(x + rng.normal(0, 0.3, (n, d)) * x.std(0), 0)
    x[:, 0] = 0.0  # never fires
    y[:, 0] = rng.uniform(0, 1, n)
    y[:, 1] = 0.0  # silenced by compression
    x[:, 2] = 3.0  # constant in FP
    x[:, 3] += 1e6  # large offset: naive sums of squares would cancel
    y[:, 3] = x[:, 3] + rng.normal(0, 1, n)
    return x, y


def streamed(x: np.ndarray, y: np.ndarray, sizes: list[int], sparse: bool = False) -> PairStats:
    """Stream batches as dense pairs or, as the measurement pass does, as stored sparse FP
    codes merged with dense compressed codes through one reused NonzeroFinder."""
    s, finder = PairStats.zeros(x.shape[1]), NonzeroFinder()
    start = 0
    for size in sizes:
        xb, yb = (
            torch.from_numpy(x[start : start + size]),
            torch.from_numpy(y[start : start + size]),
        )
        if sparse:
            flat, values = SparseCodes.from_dense(xb).flat(0, size)
            s.add(Pairs.merge(flat, values, yb, finder))
        else:
            update_stats(s, xb, yb)
        start += size
    assert start == len(x)
    return s


UNEVEN = [1, 500, 3, 0, 250, 243]


@pytest.mark.parametrize("sparse", [False, True])
def test_pearson_equals_scipy_on_every_feature(sparse: bool) -> None:
    x, y = paired_codes()
    r = streamed(x, y, UNEVEN, sparse).pearson().numpy()
    assert np.isnan(r[0]) and np.isnan(r[2])  # FP never varies: r undefined
    assert r[1] == 0.0  # compressed constant: silenced, r = 0
    for j in range(3, x.shape[1]):
        assert abs(r[j] - sps.pearsonr(x[:, j], y[:, j]).statistic) < 1e-9


@pytest.mark.parametrize("sparse", [False, True])
def test_moments_counts_and_extremes_match_numpy(sparse: bool) -> None:
    x, y = paired_codes()
    s = streamed(x, y, UNEVEN, sparse)
    assert s.n == len(x)
    np.testing.assert_allclose(s.mean_x.numpy(), x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(s.m2_y.numpy() / s.n, y.var(0), rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(s.max_x.numpy(), x.max(0))
    np.testing.assert_array_equal(s.active_x.numpy(), (x > 0).sum(0))
    np.testing.assert_array_equal(s.active_both.numpy(), ((x > 0) & (y > 0)).sum(0))
    np.testing.assert_allclose(s.sum_sq_diff.numpy(), ((y - x) ** 2).sum(0), rtol=1e-12)


@pytest.mark.parametrize("split", [1, 100, 996])
def test_merge_equals_single_stream(split: int) -> None:
    x, y = paired_codes()
    whole = streamed(x, y, [len(x)])
    left = streamed(x[:split], y[:split], [split])
    left.merge(streamed(x[split:], y[split:], [len(x) - split]))
    for name in ("mean_x", "m2_x", "m2_y", "c_xy", "max_x", "active_y"):
        np.testing.assert_allclose(
            getattr(left, name).numpy(), getattr(whole, name).numpy(), rtol=1e-9
        )


def test_rejects_unpaired_shapes() -> None:
    s = PairStats.zeros(3)
    with pytest.raises(ValueError, match="paired"):
        update_stats(s, torch.zeros(4, 3), torch.zeros(5, 3))


def test_merge_pairs_exactly_the_union_of_nonzeros() -> None:
    """Stored FP entries merged with dense compressed codes give the dense pairing's entries,
    for batches that shrink and grow under one reused finder."""
    g, finder = torch.Generator().manual_seed(3), NonzeroFinder()
    for rows in (40, 7, 0, 60):
        x = torch.relu(torch.randn(rows, 13, generator=g) - 0.7)
        y = torch.relu(x + torch.randn(rows, 13, generator=g) * 0.5 - 0.2)
        flat, values = SparseCodes.from_dense(x).flat(0, rows)
        got, want = Pairs.merge(flat, values, y, finder), pairs_from_dense(x, y)
        assert (got.n_rows, got.d) == (want.n_rows, want.d) == (rows, 13)

        def entries(p: Pairs) -> list[tuple]:
            return sorted(zip(*(t.tolist() for t in (p.rows, p.cols, p.x, p.y)), strict=True))

        assert entries(got) == entries(want)


def test_nonzero_finder_without_numpy_dtype() -> None:
    """bfloat16 codes (no numpy dtype) take torch's scan and find the same entries."""
    codes = torch.relu(torch.randn(9, 31, generator=torch.Generator().manual_seed(4)) - 0.5)
    finder = NonzeroFinder()
    want = finder(codes)
    assert torch.equal(finder(codes.bfloat16()), want)
    assert torch.equal(want, torch.from_numpy(np.flatnonzero(codes.numpy())))


def dense_oracle(x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """Every running total of PairStats computed by numpy on the whole data at once."""
    return {
        "mean_x": x.mean(0),
        "mean_y": y.mean(0),
        "m2_x": ((x - x.mean(0)) ** 2).sum(0),
        "m2_y": ((y - y.mean(0)) ** 2).sum(0),
        "c_xy": ((x - x.mean(0)) * (y - y.mean(0))).sum(0),
        "max_x": x.max(0),
        "sum_sq_x": (x**2).sum(0),
        "sum_sq_diff": ((y - x) ** 2).sum(0),
        "active_x": (x > 0).sum(0),
        "active_y": (y > 0).sum(0),
        "active_both": ((x > 0) & (y > 0)).sum(0),
    }


def assert_equals_oracle(s: PairStats, x: np.ndarray, y: np.ndarray) -> None:
    """Every field of `s` equals numpy's, in float64 / int64 (counts past 2**24 stay exact)."""
    assert s.n == len(x)
    for name, want in dense_oracle(x, y).items():
        got = getattr(s, name)
        assert got.dtype == (torch.int64 if name.startswith("active") else torch.float64), name
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-9, atol=1e-9, err_msg=name)


@pytest.mark.parametrize("sparse", [False, True])
def test_every_running_total_matches_numpy_over_batches(sparse: bool) -> None:
    """Codes below 1 (so a wrong floor of the batch maximum shows) streamed in uneven batches:
    every total, not only r, equals a dense computation."""
    x, y = paired_codes()
    x, y = x / 1e7, y / 1e7
    assert_equals_oracle(streamed(x, y, UNEVEN, sparse), x, y)


@pytest.mark.parametrize("split", [1, 100, 996])
def test_merge_matches_numpy_on_every_total(split: int) -> None:
    x, y = paired_codes()
    left = streamed(x[:split], y[:split], [split])
    left.merge(streamed(x[split:], y[split:], [len(x) - split]))
    assert_equals_oracle(left, x, y)


def test_pearson_stays_in_the_unit_interval_and_is_nan_only_for_constant_fp() -> None:
    """Rescaled and sign-flipped codes give |r| = 1 up to rounding (which, unclamped, lands
    beyond 1 for about a third of them) and never beyond it; a feature whose FP second moment
    is exactly 1 is an ordinary feature (scipy's r)."""
    rng = np.random.default_rng(5)
    x = np.abs(rng.normal(0, 1, (64, 400))) * rng.uniform(0.1, 100, 400)
    y = x * rng.uniform(0.1, 10, 400)
    s = PairStats.zeros(800)
    update_stats(s, torch.from_numpy(np.hstack([x, x])), torch.from_numpy(np.hstack([y, -y])))
    r = s.pearson().numpy()
    assert (np.abs(r) <= 1.0).all()
    np.testing.assert_allclose(r, np.r_[np.ones(400), -np.ones(400)], atol=1e-12)
    x1, y1 = np.array([[1.0], [1.0], [0.0], [0.0]]), np.array([[1.0], [0.0], [1.0], [1.0]])
    one = PairStats.zeros(1)
    update_stats(one, torch.from_numpy(x1), torch.from_numpy(y1))
    assert one.m2_x.item() == 1.0
    assert one.pearson().item() == pytest.approx(sps.pearsonr(x1[:, 0], y1[:, 0]).statistic)
