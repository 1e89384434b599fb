"""Damage overlap between two compressions: planted Jaccard and Spearman, mismatches, edges."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from sweep.base.errors import QfeatError
from sweep.derive.overlap import damage_overlap
from sweep.results.columns import FEATURE_COLUMNS

SAE = "blocks.1.hook_resid_post"


def frame_from_r(r: np.ndarray, active: np.ndarray, sae: str = SAE) -> pd.DataFrame:
    """A features.parquet-shaped frame with the given r and active flags (other columns dummy)."""
    n = len(r)
    cls = np.where(r >= 0.9, "survived", np.where(r >= 0.5, "blurred", "destroyed"))
    data = {c: np.zeros(n) for c in FEATURE_COLUMNS}
    data.update(
        sae=sae,
        feature=np.arange(n),
        r=r,
        active=active,
        silenced=False,
        **{"class": np.where(active, cls, "inactive")},
        damage=np.where(active, 1 - r, np.nan),
    )
    frame = pd.DataFrame(data)[list(FEATURE_COLUMNS)]
    return frame.astype({k: v[0] for k, v in FEATURE_COLUMNS.items()})


def planted_pair(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Two frames over 200 features (180 active) with known damaged sets."""
    rng = np.random.default_rng(seed)
    n = 200
    active = np.ones(n, dtype=bool)
    active[180:] = False
    damaged_a = np.zeros(n, dtype=bool)
    damaged_b = np.zeros(n, dtype=bool)
    damaged_a[:40] = True  # 0..39
    damaged_b[25:70] = True  # 25..69: both = 25..39 (15), union = 0..69 (70)
    damaged_a[185:190] = True  # inactive rows: must not count
    r_a = np.where(damaged_a, rng.uniform(-0.2, 0.89, n), rng.uniform(0.9, 1.0, n))
    r_b = np.where(damaged_b, rng.uniform(-0.2, 0.89, n), rng.uniform(0.9, 1.0, n))
    expected = {"n_damaged_a": 40, "n_damaged_b": 45, "n_damaged_both": 15, "jaccard": 15 / 70}
    return frame_from_r(r_a, active), frame_from_r(r_b, active), expected


def test_planted_jaccard_and_counts() -> None:
    a, b, expected = planted_pair()
    out = damage_overlap(a, b)
    assert out.n_common_active == 180 and out.n_damaged_union == 70
    for key, value in expected.items():
        assert getattr(out, key) == pytest.approx(value), key
    assert out.jaccard_reason is None and out.spearman_reason is None


def test_spearman_matches_scipy_and_row_order_is_irrelevant() -> None:
    a, b, _ = planted_pair()
    out = damage_overlap(a, b.sample(frac=1.0, random_state=3))
    act = a["active"].to_numpy()
    res = spearmanr(a["damage"][act], b["damage"][act])
    assert out.spearman == pytest.approx(res.statistic, abs=1e-12)
    assert out.spearman_p == pytest.approx(res.pvalue)
    assert out.spearman_n == 180


def test_planted_monotone_damage_gives_spearman_one_and_jaccard_one() -> None:
    rng = np.random.default_rng(1)
    r = rng.uniform(-0.5, 1.0, 100)
    a = frame_from_r(r, np.ones(100, dtype=bool))
    b = frame_from_r(r**3, np.ones(100, dtype=bool))  # monotone in r
    out = damage_overlap(a, a.copy())
    assert out.jaccard == 1.0 and out.spearman == pytest.approx(1.0)
    assert damage_overlap(a, b).spearman == pytest.approx(1.0)
    reversed_b = frame_from_r(1 - r + r.min(), np.ones(100, dtype=bool))
    assert damage_overlap(a, reversed_b).spearman == pytest.approx(-1.0)


def test_disjoint_damage_gives_jaccard_zero() -> None:
    r_a = np.array([0.1, 0.95, 0.95, 0.2])
    r_b = np.array([0.95, 0.3, 0.4, 0.95])
    active = np.ones(4, dtype=bool)
    assert damage_overlap(frame_from_r(r_a, active), frame_from_r(r_b, active)).jaccard == 0.0


def test_undefined_cases_give_nan_with_reason() -> None:
    active = np.ones(5, dtype=bool)
    healthy = frame_from_r(np.full(5, 0.99), active)
    out = damage_overlap(healthy, healthy.copy())
    assert np.isnan(out.jaccard) and "empty union" in out.jaccard_reason
    assert np.isnan(out.spearman) and "constant" in out.spearman_reason
    inactive = frame_from_r(np.full(5, 0.1), np.zeros(5, dtype=bool))
    out = damage_overlap(inactive, inactive.copy())
    assert out.n_common_active == 0 and np.isnan(out.jaccard) and np.isnan(out.spearman)
    assert "fewer than" in out.spearman_reason


def test_only_features_active_in_both_count() -> None:
    r = np.array([0.1, 0.2, 0.3, 0.95, 0.1])
    a = frame_from_r(r, np.array([True, True, True, True, False]))
    b = frame_from_r(r, np.array([True, True, True, True, True]))
    out = damage_overlap(a, b)
    assert out.n_common_active == 4 and out.n_active_b == 5
    assert out.n_damaged_a == out.n_damaged_b == 3


def test_mismatched_frames_raise() -> None:
    a, b, _ = planted_pair()
    with pytest.raises(QfeatError, match="different SAEs"):
        damage_overlap(a, b.assign(sae="blocks.2.hook_resid_post"))
    with pytest.raises(QfeatError, match="different feature sets"):
        damage_overlap(a, b.iloc[:-1])
    with pytest.raises(QfeatError, match="duplicate"):
        damage_overlap(a, pd.concat([b, b.iloc[:1]]))
    with pytest.raises(QfeatError, match="lacks columns"):
        damage_overlap(a, b.drop(columns="damage"))
