"""End to end on the embedded model: a real multirun, result files, skipping, controls."""

import json
from pathlib import Path

import pandas as pd
import pytest

import sweep.job
from conftest import SMALL, compose_config, launch
from sweep.constants import FEATURE_COLUMNS, FEATURES_FILE, JOBS_DIR, SUMMARY_FILE
from sweep.job import run


@pytest.fixture(scope="session")
def multirun(tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple[dict, pd.DataFrame]]:
    """`python launch.py -m bits=4,8,16` on tiny, shrunk; results by bit-width."""
    out = tmp_path_factory.mktemp("outputs")
    launch("-m", "bits=4,8,16", *SMALL, f"out_root={out}")
    results = {}
    for job in (out / "default" / "jobs").iterdir():
        summary = json.loads((job / SUMMARY_FILE).read_text())
        results[summary["bits"]] = (summary, pd.read_parquet(job / FEATURES_FILE))
    return results


def test_every_job_writes_both_files(multirun) -> None:
    assert sorted(multirun) == [4, 8, 16]
    for summary, frame in multirun.values():
        assert summary["status"] == "complete" and len(summary["key"]) == 16
        assert list(frame.columns) == list(FEATURE_COLUMNS)
        metrics = summary["metrics"]
        assert metrics["n_active"] > 0
        fractions = metrics["frac_survived"] + metrics["frac_blurred"] + metrics["frac_destroyed"]
        assert fractions == pytest.approx(1.0)
        assert {"torch", "sae-lens", "transformer-lens"} <= set(summary["versions"])
        assert summary["config"]["bits"] == summary["bits"]


def test_more_bits_survive_at_least_as_well(multirun) -> None:
    frac = {bits: s["metrics"]["frac_survived"] for bits, (s, _) in multirun.items()}
    mean_r = {bits: s["metrics"]["mean_r"] for bits, (s, _) in multirun.items()}
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
    assert abs(summary["metrics"]["delta_ppl"]) < 1e-3 * summary["metrics"]["fp_ppl"]


def test_sixteen_bits_keep_every_feature_of_a_continuous_sae(small_cfg) -> None:
    """A ReLU SAE has no threshold to cross: at 16 bits every active feature keeps r > 0.999."""
    small_cfg.sae = compose_config(["sae=tiny-relu"]).sae
    small_cfg.bits = 16
    run(small_cfg)
    (job,) = (Path(small_cfg.out_root) / "default" / JOBS_DIR).iterdir()
    frame = pd.read_parquet(job / FEATURES_FILE)
    assert frame["active"].sum() > 1000
    assert (frame.loc[frame["active"], "r"] > 0.999).all()


def test_no_compression_is_an_exact_control(small_cfg) -> None:
    small_cfg.compression.name = "none"
    metrics = run(small_cfg)
    assert metrics["frac_survived"] == 1.0 and metrics["delta_ppl"] == 0.0


def test_complete_job_is_skipped_without_loading(small_cfg, monkeypatch) -> None:
    first = run(small_cfg)

    def boom(*args, **kwargs):
        raise AssertionError("a complete job loaded its model again")

    monkeypatch.setattr(sweep.job, "load_hf_model", boom)
    monkeypatch.setattr(sweep.job, "load_tokenizer", boom)
    again = run(small_cfg)
    assert again.pop("skipped") is True
    assert again == first


def test_job_key_ignores_where_and_how_it_runs(small_cfg, tmp_path) -> None:
    from sweep.record import job_key

    moved = small_cfg.copy()
    moved.out_root = str(tmp_path / "elsewhere")
    moved.runtime.batch_size = 3
    assert job_key(moved) == job_key(small_cfg)
    moved.bits = 5
    assert job_key(moved) != job_key(small_cfg)


@pytest.fixture(scope="session")
def matched_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path, Path]:
    """A magnitude_matched job and the plain RTN job at the same bit-width, in one sweep."""
    from conftest import compose_config
    from sweep.record import job_dir, job_key

    out = tmp_path_factory.mktemp("matched")
    dirs = []
    for method in ("rtn", "magnitude_matched"):
        cfg = compose_config(
            [
                *SMALL,
                f"out_root={out}",
                "bits=3",
                f"compression={method}",
                "compression.calibration_sequences=8",
            ]
            if method != "rtn"
            else [*SMALL, f"out_root={out}", "bits=3"]
        )
        run(cfg)
        dirs.append(job_dir(cfg, job_key(cfg)))
    summary = json.loads((dirs[1] / SUMMARY_FILE).read_text())
    return summary, dirs[0], dirs[1]


def test_matched_search_converges_or_says_so(matched_pair) -> None:
    summary, _, _ = matched_pair
    search = summary["matched"]["search"]
    tol = summary["config"]["compression"]["rel_tol"]
    assert search["target_ppl"] > search["base_ppl"]  # 3-bit RTN costs perplexity here
    assert search["converged"] == (search["rel_error"] <= tol)
    closest = min(search["history"], key=lambda h: abs(h[1] - search["target_ppl"]))
    assert search["sparsity"] == closest[0] == summary["metrics"]["sparsity"]
    assert 0 < search["sparsity"] < 1 and search["steps"] <= 20


def test_matched_job_overlap_equals_analysis_of_both_jobs(matched_pair) -> None:
    from analysis.overlap import overlap_of_jobs

    summary, rtn_dir, matched_dir = matched_pair
    in_job = summary["matched"]["overlap"]
    from_files = overlap_of_jobs(rtn_dir, matched_dir)
    for key in ("n_common_active", "n_damaged_a", "n_damaged_b", "n_damaged_both"):
        assert in_job[key] == from_files[key]
    for key in ("jaccard", "spearman"):
        assert in_job[key] == pytest.approx(from_files[key], nan_ok=True)
    rtn_summary = json.loads((rtn_dir / SUMMARY_FILE).read_text())
    reference = summary["matched"]["reference"]
    assert reference["frac_survived"] == rtn_summary["metrics"]["frac_survived"]
    assert reference["q_ppl"] == pytest.approx(rtn_summary["metrics"]["q_ppl"], rel=1e-6)


def test_summary_carries_behaviour_and_prediction(multirun) -> None:
    summary, _ = multirun[4]
    m = summary["metrics"]
    assert m["delta_ppl"] == pytest.approx(m["q_ppl"] - m["fp_ppl"])
    assert m["frac_degraded"] == pytest.approx(1 - m["frac_survived"])
    assert m["kl_mean"] > 0 and m["kl_method"].startswith("top-128 + tail bucket")
    assert m["fp_ppl_sliding"] > 0 and m["q_ppl_sliding"] > 0
    (prediction,) = summary["prediction"].values()
    assert summary["per_sae"][summary["saes"][0]]["n_active"] == m["n_active"]
    assert prediction["estimable"] in (True, False)
    if prediction["estimable"]:
        assert 0.0 <= prediction["auc"] <= 1.0 and prediction["marginal"]
    else:
        assert prediction["reason"]


def test_cached_reference_gives_the_uncached_result(small_cfg, tmp_path) -> None:
    from sweep.record import job_dir, job_key

    frames = {}
    for cache in ("null", str(tmp_path / "cache"), str(tmp_path / "cache")):
        cfg = small_cfg.copy()
        cfg.reference_cache = None if cache == "null" else cache
        cfg.out_root = str(tmp_path / f"run{len(frames)}")
        run(cfg)
        directory = job_dir(cfg, job_key(cfg))
        summary = json.loads((directory / SUMMARY_FILE).read_text())
        frames[len(frames)] = (summary, pd.read_parquet(directory / FEATURES_FILE))
    assert [s["reference"]["computed"] for s, _ in frames.values()] == [True, True, False]
    for summary, frame in list(frames.values())[1:]:
        pd.testing.assert_frame_equal(frame, frames[0][1])
        assert summary["metrics"]["q_ppl"] == frames[0][0]["metrics"]["q_ppl"]
        assert summary["metrics"]["kl_mean"] == frames[0][0]["metrics"]["kl_mean"]
