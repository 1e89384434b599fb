"""`python launch.py -m bits=4,8,16` on the embedded model, as a user runs it: every job's
files, more bits never hurt, and the summary agrees with its own features file."""

import json
from dataclasses import asdict

import pandas as pd
import pytest

from conftest import SMALL, launch
from sweep.derive.classes import class_fractions
from sweep.derive.predict import predict_survival
from sweep.results.columns import FEATURE_COLUMNS
from sweep.results.files import FEATURES_FILE, SUMMARY_FILE
from sweep.results.summary import Summary, parse_summary


@pytest.fixture(scope="module")
def multirun(tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple[Summary, pd.DataFrame]]:
    """The sweep's results by bit-width."""
    out = tmp_path_factory.mktemp("outputs")
    launch("-m", "bits=4,8,16", *SMALL, f"out_root={out}")
    results = {}
    for job in (out / "default" / "jobs").iterdir():
        summary = parse_summary(json.loads((job / SUMMARY_FILE).read_text()))
        results[summary.bits] = (summary, pd.read_parquet(job / FEATURES_FILE))
    return results


def test_every_job_writes_both_files(multirun) -> None:
    assert sorted(multirun) == [4, 8, 16]
    for summary, frame in multirun.values():
        assert summary.status == "complete" and len(summary.key) == 16
        assert list(frame.columns) == list(FEATURE_COLUMNS)
        m = summary.metrics
        assert m.n_active > 0
        assert m.frac_survived + m.frac_blurred + m.frac_destroyed == pytest.approx(1.0)
        assert {"torch", "sae-lens", "transformer-lens"} <= set(summary.versions)
        assert summary.config["compression"]["bits"] == summary.bits


def test_more_bits_survive_at_least_as_well(multirun) -> None:
    frac = {bits: s.metrics.frac_survived for bits, (s, _) in multirun.items()}
    mean_r = {bits: s.metrics.mean_r for bits, (s, _) in multirun.items()}
    assert frac[4] <= frac[8] <= frac[16]
    assert mean_r[4] < mean_r[8] < mean_r[16] <= 1.0  # fidelity rises with every extra bit


def test_sixteen_bits_keep_every_active_feature(multirun) -> None:
    """At 16 bits the default JumpReLU SAE's codes are unchanged except where a threshold is
    crossed: every feature that fires on the same tokens keeps r > 0.999, and the few whose
    firing set changed are rare features with an activation at their threshold."""
    summary, frame = multirun[16]
    active = frame[frame["active"]]
    same_firing = active["firing_jaccard"] == 1.0
    assert (active.loc[same_firing, "r"] > 0.999).all()
    assert (~same_firing).sum() <= 0.01 * len(active)
    assert abs(summary.metrics.delta_ppl) < 1e-3 * summary.metrics.fp_ppl


def test_summary_agrees_with_its_features_file(multirun) -> None:
    """Behaviour is internally consistent, and the per-SAE fractions and the survival
    prediction recomputed from features.parquet equal the summary's (same seed)."""
    summary, frame = multirun[4]
    m = summary.metrics
    assert m.delta_ppl == pytest.approx(m.q_ppl - m.fp_ppl)
    assert m.frac_degraded == pytest.approx(1 - m.frac_survived)
    assert m.kl_mean > 0 and m.kl_method.startswith("top-128 + tail bucket")
    assert m.fp_ppl_sliding > 0 and m.q_ppl_sliding > 0
    (hook,) = summary.saes
    part = frame[frame["sae"] == hook]
    assert summary.per_sae[hook] == class_fractions(part)
    again = predict_survival(part, seed=summary.config["seed"])
    assert json.dumps(asdict(summary.prediction[hook]), sort_keys=True) == json.dumps(
        asdict(again), sort_keys=True
    )
