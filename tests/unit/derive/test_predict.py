"""Survival prediction from FP statistics: planted signal, null, marginals, degenerate cases."""

import json
from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from sweep.base.errors import QfeatError
from sweep.derive.predict import PREDICTORS, add_weight_stats, predict_survival, sae_weight_stats
from sweep.results.columns import FEATURE_COLUMNS

SAE = "blocks.0.hook_resid_post"


def synthetic_frame(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    """A features.parquet-shaped frame whose survival is driven by fp_max (+) and noise."""
    rng = np.random.default_rng(seed)
    freq = rng.uniform(0.001, 0.2, n)
    mean_active = rng.lognormal(0.0, 0.5, n)
    fp_max = mean_active * rng.uniform(2.0, 6.0, n)
    n_tokens = 10_000
    logit = 3.0 * (np.log(fp_max) - np.log(fp_max).mean()) / np.log(fp_max).std()
    survived = rng.uniform(size=n) < 1 / (1 + np.exp(-(logit + rng.normal(0, 0.3, n))))
    r = np.where(survived, rng.uniform(0.9, 1.0, n), rng.uniform(-0.1, 0.89, n))
    cls = np.where(r >= 0.9, "survived", np.where(r >= 0.5, "blurred", "destroyed"))
    frame = pd.DataFrame(
        {
            "sae": SAE,
            "feature": np.arange(n),
            "n_tokens": n_tokens,
            "fp_active_count": (freq * n_tokens).astype(np.int64),
            "fp_frequency": freq,
            "fp_mean": freq * mean_active,
            "fp_mean_active": mean_active,
            "fp_std": mean_active * np.sqrt(freq),
            "fp_max": fp_max,
            "enc_norm": rng.lognormal(0.0, 0.2, n),
            "dec_norm": np.ones(n),
            "enc_bias": rng.normal(0, 0.1, n),
            "threshold": np.nan,
            "q_active_count": (freq * n_tokens).astype(np.int64),
            "q_mean": freq * mean_active,
            "q_std": mean_active * np.sqrt(freq),
            "firing_jaccard": r,
            "rel_amplitude_error": 1 - r,
            "r": r,
            "active": True,
            "silenced": False,
            "class": cls,
            "damage": 1 - r,
        }
    )
    frame = frame.reindex(columns=list(FEATURE_COLUMNS))  # fidelity columns: NaN (not sampled)
    return frame.astype({k: v[0] for k, v in FEATURE_COLUMNS.items()})


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return synthetic_frame()


def test_planted_predictor_is_found(frame: pd.DataFrame) -> None:
    out = predict_survival(frame, predictors=("fp_max", "fp_frequency", "fp_std"), k=5, seed=0)
    assert out.estimable and out.auc > 0.9
    assert out.n == 2000 and out.n_positive == int((frame["class"] == "survived").sum())
    assert len(out.fold_aucs) == 5 and abs(out.fold_auc_mean - out.auc) < 0.05
    assert out.marginal["fp_max"].sign == "+"
    assert out.marginal["fp_max"].auc > 0.9
    roc = out.roc
    assert len(roc.fpr) == len(roc.tpr) <= 200
    assert roc.fpr[0] == 0.0 and roc.fpr[-1] == 1.0 and roc.tpr[-1] == 1.0
    json.dumps(asdict(out), allow_nan=False)  # plain floats/lists only, nothing undefined here


def test_tree_model_finds_planted_predictor() -> None:
    small = synthetic_frame(n=600, seed=2)
    out = predict_survival(small, predictors=("fp_max", "fp_frequency"), model="tree", k=3)
    assert out.estimable and out.model == "tree" and out.auc > 0.85
    json.dumps(asdict(out))


def test_shuffled_labels_give_chance_auc(frame: pd.DataFrame) -> None:
    """Tolerance 0.5 ± 0.1: the null AUC's sd at n=2000 is ≈ 0.013, so this is > 7 sd."""
    shuffled = frame.assign(class_=np.random.default_rng(1).permutation(frame["class"].to_numpy()))
    shuffled = shuffled.drop(columns="class").rename(columns={"class_": "class"})
    out = predict_survival(shuffled, seed=0)
    assert out.estimable and abs(out.auc - 0.5) < 0.1


def test_marginal_auc_matches_sklearn_and_sign(frame: pd.DataFrame) -> None:
    planted = frame.assign(fp_mean=-frame["fp_max"])  # a planted negative predictor
    planted.loc[planted.index[:50], "fp_std"] = np.nan
    out = predict_survival(planted, predictors=("fp_max", "fp_mean", "fp_std"))
    y = (planted["class"] == "survived").to_numpy()
    assert out.marginal["fp_max"].auc == pytest.approx(roc_auc_score(y, planted["fp_max"]))
    neg = out.marginal["fp_mean"]
    assert neg.sign == "-" and neg.auc < 0.1
    assert neg.auc_abs == pytest.approx(1 - neg.auc)
    keep = planted["fp_std"].notna().to_numpy()
    expected = roc_auc_score(y[keep], planted["fp_std"].to_numpy()[keep])
    assert out.marginal["fp_std"].auc == pytest.approx(expected)
    assert out.marginal["fp_std"].n == 1950


def test_default_predictors_drop_all_nan_threshold_and_derive(frame: pd.DataFrame) -> None:
    out = predict_survival(frame)
    assert out.estimable and out.dropped == ["threshold"]
    assert set(out.predictors) == set(PREDICTORS) - {"threshold"}
    assert {"fp_log_frequency", "fp_cv", "fp_peak_ratio"} <= set(out.marginal)
    assert set(out.coef_standardized) == set(out.predictors)


def test_only_active_rows_are_used(frame: pd.DataFrame) -> None:
    f = frame.copy()
    f.loc[f.index[:500], "active"] = False
    f.loc[f.index[:500], "class"] = "inactive"
    assert predict_survival(f, predictors=("fp_max",)).n == 1500


@pytest.mark.parametrize("bad", ["r", "class", "damage", "q_mean", "firing_jaccard"])
def test_compressed_side_predictor_raises(frame: pd.DataFrame, bad: str) -> None:
    with pytest.raises(QfeatError, match="compressed"):
        predict_survival(frame, predictors=("fp_max", bad))


def test_unknown_predictor_raises(frame: pd.DataFrame) -> None:
    with pytest.raises(QfeatError, match="not a column"):
        predict_survival(frame.drop(columns="enc_norm"), predictors=("enc_norm",))


def test_add_weight_stats_joins_per_sae(frame: pd.DataFrame) -> None:
    from sae_lens import JumpReLUSAE, JumpReLUSAEConfig  # heavy import: only where needed

    torch.manual_seed(0)
    jump = JumpReLUSAE(JumpReLUSAEConfig(d_in=8, d_sae=len(frame)))
    with torch.no_grad():
        jump.threshold.copy_(torch.rand(len(frame)))
    stats = sae_weight_stats(jump)
    joined = add_weight_stats(frame.drop(columns=["enc_norm", "threshold"]), {SAE: stats})
    assert len(joined) == len(frame) and joined["sae"].dtype == frame["sae"].dtype
    assert np.allclose(joined["threshold"], stats["threshold"])
    assert np.allclose(joined["enc_norm"], stats["enc_norm"])
    out = predict_survival(joined)
    assert out.estimable and out.dropped == [] and "threshold" in out.marginal


def test_degenerate_cases_are_not_estimable(frame: pd.DataFrame) -> None:
    all_survived = frame.assign(**{"class": "survived"})
    minority = frame.assign(**{"class": "blurred"})
    minority.loc[minority.index[:3], "class"] = "survived"
    few = frame.iloc[:6]
    none_active = frame.assign(active=False)
    for case in (all_survived, minority, few, none_active):
        out = predict_survival(case, predictors=("fp_max",), k=5)
        assert out.estimable is False and isinstance(out.reason, str)
        assert out.auc is None and out.roc is None
        json.dumps(asdict(out))
    only_nan = frame.assign(fp_max=np.nan)
    assert predict_survival(only_nan, predictors=("fp_max",)).estimable is False


def test_sae_weight_stats_standard_and_jumprelu() -> None:
    from sae_lens import JumpReLUSAE, JumpReLUSAEConfig, StandardSAE, StandardSAEConfig

    torch.manual_seed(0)
    sae = StandardSAE(StandardSAEConfig(d_in=8, d_sae=16))
    with torch.no_grad():
        sae.b_enc.copy_(torch.randn(16))
    stats = sae_weight_stats(sae)
    assert list(stats.columns) == ["feature", "enc_norm", "dec_norm", "enc_bias", "threshold"]
    assert stats["feature"].dtype == np.int64 and stats["feature"].tolist() == list(range(16))
    j = 5
    assert stats["enc_norm"][j] == pytest.approx(float(sae.W_enc.detach()[:, j].norm()), rel=1e-6)
    assert stats["dec_norm"][j] == pytest.approx(float(sae.W_dec.detach()[j].norm()), rel=1e-6)
    assert stats["enc_bias"][j] == pytest.approx(float(sae.b_enc.detach()[j]))
    assert stats["threshold"].isna().all()

    jump = JumpReLUSAE(JumpReLUSAEConfig(d_in=8, d_sae=16))
    with torch.no_grad():
        jump.threshold.copy_(torch.linspace(0.1, 1.6, 16))
    jstats = sae_weight_stats(jump)
    assert np.allclose(jstats["threshold"], np.linspace(0.1, 1.6, 16))
