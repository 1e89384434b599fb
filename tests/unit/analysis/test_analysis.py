"""analysis/ on synthetic result files with known numbers: collect, tables, CLI, wandb loader."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from synthetic import R, features_frame, two_sae_sweep, write_job

from analysis.__main__ import main
from analysis.load.collect import collect
from analysis.load.from_wandb import load_wandb
from analysis.report.page import write_report
from analysis.tables.features import worst_features
from analysis.tables.headline import headline, matched
from analysis.tables.summarize import bootstrap_fraction_ci
from sweep.derive.classes import class_counts
from sweep.results.columns import FEATURE_COLUMNS
from sweep.results.files import FEATURES_FILE, JOBS_DIR, SUMMARY_FILE
from sweep.results.summary import BaselineMetrics, Matched, MatchResult, Overlap


def matched_block() -> Matched:
    """A matched pair's record: 25% sparsity, converged, baseline PPL 12, overlap 0.5/0.75."""
    counts = class_counts(features_frame(R))
    behaviour = {"fp_ppl": 10.0, "q_ppl": 12.0, "delta_ppl": 2.0, "fp_loss": 2.3, "q_loss": 2.5}
    search = MatchResult(
        target_ppl=12.0,
        base_ppl=10.0,
        sparsity=0.25,
        ppl=12.5,
        rel_error=0.01,
        converged=True,
        steps=5,
    )
    overlap = Overlap(
        n_features=10,
        n_active_a=8,
        n_active_b=8,
        n_common_active=8,
        n_damaged_a=3,
        n_damaged_b=4,
        n_damaged_both=3,
        n_damaged_union=4,
        jaccard=0.5,
        jaccard_reason=None,
        spearman=0.75,
        spearman_p=0.03,
        spearman_n=8,
        spearman_reason=None,
    )
    baseline = BaselineMetrics(**counts, **behaviour, kl_mean=0.2)
    return Matched(baseline_method="rtn", search=search, baseline=baseline, overlap=overlap)


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """rtn at 4 bits, a matched job with an overlap block, and three broken jobs."""
    root = tmp_path / "toy_sweep"
    write_job(root, "a" * 16)
    write_job(
        root,
        "b" * 16,
        compression="magnitude_matched",
        sparsity=0.25,
        matched=matched_block(),
    )
    failed = root / JOBS_DIR / ("c" * 16)
    failed.mkdir(parents=True)
    (failed / "failure.json").write_text(json.dumps({"error": "QfeatError: boom"}))
    bad = write_job(root, "d" * 16)
    features_frame(R).drop(columns=["fp_max"]).to_parquet(bad / FEATURES_FILE)
    typed = write_job(root, "e" * 16)
    features_frame(R).astype({"feature": "float64"}).to_parquet(typed / FEATURES_FILE)
    return root


def test_collect_lists_skipped_jobs_with_reasons(sweep: Path) -> None:
    col = collect([sweep])
    assert sorted(col.jobs["key"]) == ["a" * 16, "b" * 16]
    reasons = dict(
        zip(col.skipped["job"].map(lambda p: Path(p).name), col.skipped["reason"], strict=True)
    )
    assert reasons["c" * 16] == "failed: QfeatError: boom"
    assert "lacks columns ['fp_max']" in reasons["d" * 16]
    assert "feature is float64, expected int64" in reasons["e" * 16]
    assert len(col.features) == 20 and set(col.features["bits"]) == {4}


def test_headline_numbers_equal_hand_computed(sweep: Path) -> None:
    t = headline(collect([sweep])).set_index("compression")
    row = t.loc["rtn"]
    assert (row["n_active"], row["layer"], row["bits"]) == (8, 1, 4)
    assert row["pct_survived"] == pytest.approx(62.5)
    assert row["pct_blurred"] == pytest.approx(25.0)
    assert row["pct_destroyed"] == pytest.approx(12.5)
    assert (row["fp_ppl"], row["q_ppl"], row["delta_ppl"], row["kl_mean"]) == (10, 12.5, 2.5, 0.25)
    lo, hi = (float(x) for x in row["survived_ci95"].split("–"))
    assert lo < 62.5 < hi
    assert t.loc["magnitude_matched", "sparsity"] == 0.25


def test_matched_table_from_summary(sweep: Path) -> None:
    m = matched(collect([sweep])).iloc[0]
    assert (m["bits"], m["matched_sparsity"], m["jaccard"], m["spearman"]) == (4, 0.25, 0.5, 0.75)
    assert (m["baseline_ppl"], m["pruned_ppl"], m["converged"]) == (12.0, 12.5, True)


def test_bootstrap_ci_is_seeded_and_sane() -> None:
    assert bootstrap_fraction_ci(50, 100, seed=1) == bootstrap_fraction_ci(50, 100, seed=1)
    lo, hi = bootstrap_fraction_ci(50, 100)
    assert 0.38 < lo < 0.45 and 0.55 < hi < 0.62  # ≈ 0.5 ± 1.96·0.05
    assert bootstrap_fraction_ci(10, 10) == (1.0, 1.0)


def test_worst_features_and_cli(sweep: Path, capsys: pytest.CaptureFixture) -> None:
    col = collect([sweep])
    w = worst_features(col, model="toy", bits=4, compression="rtn", worst=3)
    assert w["feature"].tolist() == [7, 6, 5] and w["class"].tolist()[0] == "destroyed"
    assert (
        main(["features", str(sweep), "--compression", "rtn", "--worst", "2", "--csv", "-q"]) == 0
    )
    out = pd.read_csv(__import__("io").StringIO(capsys.readouterr().out))
    assert out["r"].tolist() == [0.1, 0.6]
    assert main(["features", str(sweep), "--bits", "3"]) == 2
    assert "no job with bits=3" in capsys.readouterr().err


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main([str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.strip().endswith("does not exist")
    (tmp_path / "empty" / JOBS_DIR).mkdir(parents=True)
    assert main([str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("qfeat-analysis: error: no job results") and "\n" not in err


def test_report_skips_absent_figures_with_a_note(sweep: Path) -> None:
    page = write_report(collect([sweep]), sweep / "report", n_boot=200)
    text = page.read_text()
    assert "prediction_roc</code> skipped" in text  # no prediction in the summaries
    assert (sweep / "report" / "figures" / "survival_vs_bits.png").stat().st_size > 0
    assert (sweep / "report" / "tables" / "headline.csv").is_file()


def test_a_report_drawn_by_two_workers_equals_one_drawn_in_place(sweep: Path) -> None:
    col = collect([sweep])
    pages = {w: write_report(col, sweep / f"report{w}", n_boot=200, workers=w) for w in (1, 2)}
    files = {
        w: sorted(p.relative_to(page.parent) for p in page.parent.rglob("*.png"))
        for w, page in pages.items()
    }
    assert files[1] == files[2] and files[1]
    for name in files[1]:
        assert (pages[1].parent / name).read_bytes() == (pages[2].parent / name).read_bytes()
    stamped = [p.read_text().split("generated", 1)[1].split("UTC", 1)[1] for p in pages.values()]
    assert stamped[0] == stamped[1]  # the same page after its time stamp


class FakeFile:
    """wandb's File: download() writes the stored JSON under root."""

    def __init__(self, path: str, payload: dict | None) -> None:
        if payload is None:
            raise FileNotFoundError(path)
        self.path, self.payload = path, payload

    def download(self, root: str, replace: bool = False):
        target = Path(root) / self.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(self.payload))
        return open(target)


class FakeRun:
    """Just the wandb public-API Run attributes the loader uses."""

    def __init__(self, run_id: str, files: dict[str, dict], summary: dict) -> None:
        self.id, self.path, self.state = run_id, ["ent", "proj", run_id], "finished"
        self.files, self.summary = files, summary

    def file(self, path: str) -> FakeFile:
        return FakeFile(path, self.files.get(path))

    def logged_artifacts(self) -> list:
        return []


class FakeApi:
    """wandb.Api stub: runs(path, filters) returns the runs of the requested group."""

    def __init__(self, runs: list[FakeRun]) -> None:
        self._runs, self.calls = runs, []

    def runs(self, path: str, filters: dict) -> list[FakeRun]:
        self.calls.append((path, filters))
        return self._runs


def test_from_wandb_matches_file_loader(sweep: Path) -> None:
    frame = features_frame(R)
    table = {
        "columns": list(frame.columns),
        "data": json.loads(frame.to_json(orient="values")),
    }  # JSON: NaN → null
    summary = json.loads((sweep / JOBS_DIR / ("a" * 16) / SUMMARY_FILE).read_text())
    path = "media/table/f.table.json"
    good = FakeRun("r1", {SUMMARY_FILE: summary, path: table}, {"features": {"path": path}})
    empty = FakeRun("r2", {SUMMARY_FILE: {**summary, "key": "f" * 16}}, {})
    lost = FakeRun("r3", {}, {"features": {"path": path}})
    api = FakeApi([good, empty, lost])
    col = load_wandb("proj", "toy_sweep", entity="ent", api=api)
    assert api.calls == [("ent/proj", {"group": "toy_sweep"})]
    assert col.jobs["key"].tolist() == ["a" * 16]
    reasons = col.skipped["reason"].tolist()
    assert "no logged 'features' table" in reasons[0]
    assert f"no readable {SUMMARY_FILE}" in reasons[1]
    from_files = collect([sweep])
    got = headline(col).iloc[0]
    want = headline(from_files).set_index("compression").loc["rtn"]
    for c in ("n_active", "pct_survived", "pct_blurred", "pct_destroyed", "delta_ppl"):
        assert got[c] == want[c]
    mine = from_files.features[from_files.features["key"] == "a" * 16].reset_index(drop=True)
    cols = list(FEATURE_COLUMNS)
    pd.testing.assert_frame_equal(col.features[cols], mine[cols], check_dtype=False)


def test_analysis_imports_nothing_heavy() -> None:
    code = (
        "import sys, analysis.__main__, analysis.report.page, analysis.load.from_wandb, "
        "analysis.tables.features; heavy = {'torch', 'transformer_lens', 'sae_lens', 'hydra', "
        "'sklearn'} & set(sys.modules); assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.parametrize("damage", ["summary", "features"])
def test_a_sweep_without_a_readable_job_is_one_line(damage, tmp_path, capsys) -> None:
    """The only job's summary.json is garbage, or its features.parquet is gone: one line saying
    no readable job is left, naming the skipped job and why, exit 2."""
    job = write_job(tmp_path / "s", "a" * 16)
    if damage == "summary":
        (job / SUMMARY_FILE).write_text("garbage")
    else:
        (job / FEATURES_FILE).unlink()
    assert main([str(tmp_path / "s")]) == 2
    (line,) = [x for x in capsys.readouterr().err.splitlines() if x.startswith("qfeat-analysis")]
    assert "no readable job is left" in line and "all 1 were skipped" in line
    assert "a" * 16 in line and ("unreadable" in line or "no features.parquet" in line)


def test_bare_invocation_prints_usage_and_exit_2(capsys) -> None:
    assert main([]) == 2
    assert "usage:" in capsys.readouterr().out


def test_features_choose_a_model_and_an_sae(tmp_path: Path, capsys) -> None:
    sweep = two_sae_sweep(tmp_path / "s")
    args = ["features", str(sweep), "--model", "toy", "--bits", "4", "--worst", "2", "--csv"]
    assert main([*args, "--sae", "blocks.3.hook_resid_post", "-q"]) == 0
    out = pd.read_csv(__import__("io").StringIO(capsys.readouterr().out))
    assert set(out["sae"]) == {"blocks.3.hook_resid_post"} and len(out) == 2
    assert main(["features", str(sweep), "--model", "gpt5"]) == 2
    assert "gpt5" in capsys.readouterr().err
    csv = tmp_path / "worst.csv"
    assert main(["features", str(sweep), "--bits", "3", "--csv", str(csv), "-q"]) == 0
    assert len(pd.read_csv(csv)) == 2 * 8  # 8 active features in each of the two SAEs
