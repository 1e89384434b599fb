"""Survival classes, the features.parquet column contract and the job's class fractions."""

import numpy as np
import pandas as pd
import torch
from omegaconf import OmegaConf
from scipy import stats as sps

from helpers import update_stats
from sweep.config.schema import SurvivalConfig
from sweep.derive.classes import class_counts, class_fractions, classify
from sweep.derive.survival import feature_frame
from sweep.passes.stats import PairStats
from sweep.results.columns import FEATURE_COLUMNS


def test_classify_at_and_around_thresholds() -> None:
    r = np.array([1.0, 0.9, 0.8999, 0.5, 0.4999, -0.3, 0.95])
    active = np.array([True] * 6 + [False])
    got = classify(r, active, survived=0.9, blurred=0.5)
    expected = ["survived", "survived", "blurred", "blurred", "destroyed", "destroyed", "inactive"]
    assert list(got) == expected


def planted_stats() -> PairStats:
    """Feature 0 identical, 1 noisy (blurred), 2 unrelated, 3 silenced, 4 never fires."""
    rng = np.random.default_rng(0)
    n = 4000
    base = np.maximum(rng.normal(0, 1, (n, 5)), 0)
    x = base.copy()
    x[:, 4] = 0
    y = base.copy()
    y[:, 1] = np.maximum(base[:, 1] + rng.normal(0, 0.6, n), 0)
    y[:, 2] = np.maximum(rng.normal(0, 1, n), 0)
    y[:, 3] = 0
    s = PairStats.zeros(5)
    update_stats(s, torch.from_numpy(x), torch.from_numpy(y))
    return s


def test_feature_frame_contract_and_planted_classes() -> None:
    cfg = OmegaConf.structured(SurvivalConfig(min_active_tokens=10))
    weights = pd.DataFrame(
        {
            "feature": np.arange(5),
            "enc_norm": 1.0,
            "dec_norm": 2.0,
            "enc_bias": 0.0,
            "threshold": np.nan,
        }
    )
    frame = feature_frame(planted_stats(), "blocks.0.hook_resid_post", cfg, weights)
    assert list(frame.columns) == list(FEATURE_COLUMNS)
    for name, (dtype, _) in FEATURE_COLUMNS.items():
        assert str(frame[name].dtype) == dtype, name
    assert list(frame["class"]) == ["survived", "blurred", "destroyed", "destroyed", "inactive"]
    assert list(frame["silenced"]) == [False, False, False, True, False]
    assert frame.loc[0, "firing_jaccard"] == 1.0 and frame.loc[0, "rel_amplitude_error"] == 0.0
    assert frame.loc[3, "r"] == 0.0 and frame.loc[3, "damage"] == 1.0
    assert np.isnan(frame.loc[4, "damage"])
    fractions = class_fractions(frame)
    assert fractions.n_active == 4
    assert (fractions.n_survived, fractions.n_blurred, fractions.n_destroyed) == (1, 1, 2)
    assert fractions.frac_destroyed == 0.5 and fractions.n_silenced == 1


def no_weights(d: int) -> pd.DataFrame:
    """SAE-weight columns of `d` features (their values do not matter here)."""
    return pd.DataFrame(
        {"feature": np.arange(d), "enc_norm": 1.0, "dec_norm": 1.0, "enc_bias": 0.0}
    ).assign(threshold=np.nan)


def test_feature_frame_columns_equal_numpy_on_the_dense_codes() -> None:
    """Each statistic column against numpy on the codes; a feature active exactly
    `min_active_tokens` times is active; a constant-firing FP feature (r undefined) is destroyed;
    never-active and never-firing features get NaN where a ratio has no denominator."""
    rng = np.random.default_rng(2)
    n, d = 50, 6
    x = np.maximum(rng.normal(0, 0.05, (n, d)), 0)  # small codes: variances below 1
    y = np.maximum(x + rng.normal(0, 0.02, (n, d)), 0)
    x[:, 2], x[:7, 2] = 0.0, 0.01  # active exactly min_active_tokens = 7 times
    x[:, 3] = 0.25  # fires on every token with one (binary-exact) value: r undefined
    x[:, 4], y[:, 4] = 0.0, 0.0  # never fires on either side
    y[:, 5] = 0.0  # silenced, FP variance below 1
    stats = PairStats.zeros(d)
    update_stats(stats, torch.from_numpy(x), torch.from_numpy(y))
    cfg = OmegaConf.structured(SurvivalConfig(min_active_tokens=7))
    f = feature_frame(stats, "h", cfg, no_weights(d))
    on_x, on_y = x > 0, y > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        np.testing.assert_allclose(f["fp_frequency"], on_x.mean(0))
        np.testing.assert_allclose(f["fp_mean_active"], x.sum(0) / on_x.sum(0))
        np.testing.assert_allclose(f["fp_std"], x.std(0), atol=1e-15)
        np.testing.assert_allclose(f["q_std"], y.std(0), atol=1e-15)
        jaccard = (on_x & on_y).sum(0) / (on_x | on_y).sum(0)
        np.testing.assert_allclose(f["firing_jaccard"], jaccard)
        amp = np.sqrt(((y - x) ** 2).sum(0) / (x**2).sum(0))
        np.testing.assert_allclose(f["rel_amplitude_error"], amp)
    assert np.isnan(f.loc[4, "fp_mean_active"]) and np.isnan(f.loc[4, "firing_jaccard"])
    assert list(f["active"]) == [True, True, True, True, False, True]
    assert f.loc[3, "class"] == "destroyed" and np.isnan(f.loc[3, "r"])
    assert list(f["silenced"]) == [False, False, False, False, False, True]
    active = f["active"].to_numpy()
    r = np.array([sps.pearsonr(x[:, j], y[:, j]).statistic for j in (0, 1, 2)])
    np.testing.assert_allclose(f.loc[:2, "damage"], 1.0 - r, rtol=1e-9)
    assert np.isnan(f.loc[~active, "damage"]).all()


def test_class_fractions_without_active_features_are_undefined() -> None:
    """A job whose features never reach min_active_tokens: zero counts, NaN fractions and r."""
    frame = pd.DataFrame(
        {
            "active": [False, False],
            "class": ["inactive", "inactive"],
            "silenced": [False, False],
            "r": [np.nan, 0.5],
        }
    )
    counts = class_counts(frame)
    assert counts["n_features"] == 2 and counts["n_active"] == 0 and counts["n_silenced"] == 0
    for key in ("frac_survived", "frac_blurred", "frac_destroyed", "mean_r", "median_r"):
        assert np.isnan(counts[key]), key
