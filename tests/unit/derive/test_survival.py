"""Survival classes, the features.parquet column contract and the job's class fractions."""

import numpy as np
import pandas as pd
import torch
from omegaconf import OmegaConf

from helpers import update_stats
from sweep.config.schema import SurvivalConfig
from sweep.derive.classes import class_fractions, classify
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
