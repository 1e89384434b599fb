"""One job on the embedded model, in process: result files, skipping, controls, matched pairs,
and the FP reference cache."""

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

import sweep.job.stages
from analysis.tables.overlap import overlap_of_jobs
from conftest import SMALL, compose_config
from sweep.inputs.models import effective_dtype
from sweep.job.keys import plan_job
from sweep.job.run import run
from sweep.results.files import FEATURES_FILE, JOBS_DIR, SUMMARY_FILE
from sweep.results.summary import parse_summary


def read(directory: Path):
    """A job directory's typed summary and features frame."""
    summary = parse_summary(json.loads((directory / SUMMARY_FILE).read_text()))
    return summary, pd.read_parquet(directory / FEATURES_FILE)


def test_sixteen_bits_keep_every_feature_of_a_continuous_sae(tmp_path) -> None:
    """A ReLU SAE has no threshold to cross: at 16 bits every active feature keeps r > 0.999."""
    cfg = compose_config([*SMALL, f"out_root={tmp_path}", "sae=tiny-relu", "bits=16"])
    run(cfg)
    (job,) = (tmp_path / "default" / JOBS_DIR).iterdir()
    frame = pd.read_parquet(job / FEATURES_FILE)
    assert frame["active"].sum() > 1000
    assert (frame.loc[frame["active"], "r"] > 0.999).all()


def test_no_compression_is_an_exact_control(tmp_path) -> None:
    """Every active feature survives with r = 1, and its token-bootstrap interval is [1, 1]."""
    cfg = compose_config([*SMALL, f"out_root={tmp_path}", "compression=none"])
    summary = run(cfg).summary
    m, u = summary.metrics, summary.uncertainty
    assert m.frac_survived == 1.0 and m.delta_ppl == 0.0 and m.n_compressed_matrices == 0
    assert m.n_uncertain == 0 and u.settled and u.job.frac_survived_lo == 1.0
    frame = pd.read_parquet(plan_job(cfg).out / FEATURES_FILE)
    active = frame[frame["active"]]
    assert len(active) > 100
    assert (active["r_lo"] == 1.0).all() and (active["r_hi"] == 1.0).all()


def test_complete_job_is_skipped_without_loading(small_cfg, monkeypatch) -> None:
    first = run(small_cfg)

    def boom(*args, **kwargs):
        raise AssertionError("a complete job loaded its model again")

    for name in ("load_hf_model", "load_tokenizer", "load_saes"):
        monkeypatch.setattr(sweep.job.stages, name, boom)
    again = run(small_cfg)
    assert again.skipped and not first.skipped
    assert again.summary == first.summary


def test_job_key_ignores_where_and_how_it_runs(small_cfg, tmp_path) -> None:
    moved = small_cfg.copy()
    moved.out_root = str(tmp_path / "elsewhere")
    moved.runtime.batch_size = 3
    moved.wandb.mode = "offline"
    assert plan_job(moved).key == plan_job(small_cfg).key
    moved.bits = 5
    assert plan_job(moved).key != plan_job(small_cfg).key


def test_half_precision_on_cpu_is_opt_in_and_keyed(small_cfg) -> None:
    """runtime.half_on_cpu keeps a bfloat16 model in bfloat16 on CPU; it changes the numbers, so
    it changes the key (and only where it applies: a float32 model's key stays)."""
    cpu = torch.device("cpu")
    assert effective_dtype("bfloat16", cpu) == torch.float32
    assert effective_dtype("bfloat16", cpu, half_on_cpu=True) == torch.bfloat16
    assert effective_dtype("float32", cpu, half_on_cpu=True) == torch.float32
    base = plan_job(small_cfg).key
    small_cfg.runtime.half_on_cpu = True
    assert plan_job(small_cfg).key == base  # tiny is float32
    small_cfg.model.dtype = "bfloat16"
    half = plan_job(small_cfg).key
    small_cfg.runtime.half_on_cpu = False
    assert len({base, half, plan_job(small_cfg).key}) == 3


def test_summary_is_the_typed_record(small_cfg) -> None:
    """summary.json parses back into the record the job returned (one definition, both ways),
    and its config holds the method's own bit-width, not the sweep axis."""
    result = run(small_cfg)
    summary, frame = read(plan_job(small_cfg).out)
    assert summary == result.summary and summary.schema_version == 2
    assert summary.bits == summary.config["compression"]["bits"] == 4
    assert "bits" not in summary.config and "sparsity" not in summary.config
    assert summary.metrics.n_features == len(frame)


@pytest.fixture(scope="module")
def matched_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A magnitude_matched job and the plain RTN job at the same bit-width, in one sweep."""
    out = tmp_path_factory.mktemp("matched")
    dirs = []
    for extra in ([], ["compression=magnitude_matched", "calibration_sequences=8"]):
        cfg = compose_config([*SMALL, f"out_root={out}", "bits=3", *extra])
        run(cfg)
        dirs.append(plan_job(cfg).out)
    return dirs[0], dirs[1]


def test_matched_search_converges_or_says_so(matched_pair) -> None:
    summary, _ = read(matched_pair[1])
    search = summary.matched.search
    tol = summary.config["compression"]["rel_tol"]
    assert search.target_ppl > search.base_ppl  # 3-bit RTN costs perplexity here
    assert search.converged == (search.rel_error <= tol)
    closest = min(search.history, key=lambda h: abs(h[1] - search.target_ppl))
    assert search.sparsity == closest[0] == summary.metrics.sparsity
    assert 0 < search.sparsity < 1 and search.steps <= 20
    assert summary.bits == 3 and summary.matched.baseline_method == "rtn"


def test_matched_job_overlap_equals_analysis_of_both_jobs(matched_pair) -> None:
    rtn_dir, matched_dir = matched_pair
    summary, _ = read(matched_dir)
    in_job = summary.matched.overlap
    from_files = overlap_of_jobs(rtn_dir, matched_dir)
    for key in ("n_common_active", "n_damaged_a", "n_damaged_b", "n_damaged_both"):
        assert getattr(in_job, key) == getattr(from_files, key)
    for key in ("jaccard", "spearman"):
        assert getattr(in_job, key) == pytest.approx(getattr(from_files, key), nan_ok=True)
    rtn, _ = read(rtn_dir)
    baseline = summary.matched.baseline
    assert baseline.frac_survived == rtn.metrics.frac_survived
    assert baseline.q_ppl == pytest.approx(rtn.metrics.q_ppl, rel=1e-12)
    assert baseline.kl_mean == pytest.approx(rtn.metrics.kl_mean, rel=1e-12)


def test_cached_reference_gives_the_uncached_result(small_cfg, tmp_path) -> None:
    frames = []
    for cache in (None, str(tmp_path / "cache"), str(tmp_path / "cache")):
        cfg = small_cfg.copy()
        cfg.reference_cache = cache
        cfg.out_root = str(tmp_path / f"run{len(frames)}")
        run(cfg)
        frames.append(read(plan_job(cfg).out))
    assert [s.reference.computed for s, _ in frames] == [True, True, False]
    for summary, frame in frames[1:]:
        pd.testing.assert_frame_equal(frame, frames[0][1])
        assert summary.metrics.q_ppl == frames[0][0].metrics.q_ppl
        assert summary.metrics.kl_mean == frames[0][0].metrics.kl_mean
