"""analysis/ on synthetic result files with known numbers: collect, tables, CLI, wandb loader."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.__main__ import main
from analysis.collect import collect
from analysis.features import worst_features
from analysis.from_wandb import load_wandb
from analysis.report import write_report
from analysis.summarize import bootstrap_fraction_ci
from analysis.tables import headline, matched
from sweep.constants import FEATURE_COLUMNS, FEATURES_FILE, JOBS_DIR, SUMMARY_FILE

HOOK = "blocks.1.hook_resid_post"
# 8 active features (5 survived, 2 blurred, 1 destroyed) and 2 inactive ones.
R = [0.99, 0.95, 0.93, 0.92, 0.91, 0.8, 0.6, 0.1, np.nan, np.nan]


def features_frame(r: list[float]) -> pd.DataFrame:
    """A features.parquet frame with every contract column and dtype; classes follow r."""
    n = len(r)
    r_arr = np.asarray(r, dtype=np.float64)
    active = ~np.isnan(r_arr)
    cls = np.where(r_arr >= 0.9, "survived", np.where(r_arr >= 0.5, "blurred", "destroyed"))
    data = {c: np.linspace(0.1, 1.0, n) for c, (t, _) in FEATURE_COLUMNS.items() if t == "float64"}
    data.update({c: np.arange(n) + 5 for c, (t, _) in FEATURE_COLUMNS.items() if t == "int64"})
    data.update(
        sae=HOOK,
        feature=np.arange(n),
        r=r_arr,
        active=active,
        silenced=np.zeros(n, bool),
        damage=np.where(active, 1 - r_arr, np.nan),
        **{"class": np.where(active, cls, "inactive")},
    )
    frame = pd.DataFrame(data)[list(FEATURE_COLUMNS)]
    return frame.astype({k: v[0] for k, v in FEATURE_COLUMNS.items()})


def nested(flat: dict) -> dict:
    """{'a.b': 1} → {'a': {'b': 1}}: a summary's config from dotted keys."""
    out: dict = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def write_job(
    sweep: Path,
    key: str,
    compression: str = "rtn",
    bits: int = 4,
    r=R,
    config: dict | None = None,
    frame: pd.DataFrame | None = None,
    **extra,
):
    """Write one job's features.parquet and summary.json (config: dotted overrides) under
    sweep/jobs/key."""
    d = sweep / JOBS_DIR / key
    d.mkdir(parents=True)
    frame = features_frame(list(r)) if frame is None else frame
    frame.to_parquet(d / FEATURES_FILE, index=False)
    metrics = {
        "n_active": 8,
        "frac_survived": 5 / 8,
        "frac_blurred": 2 / 8,
        "frac_destroyed": 1 / 8,
        "fp_ppl": 10.0,
        "q_ppl": 12.5,
        "delta_ppl": 2.5,
        "kl_mean": 0.25,
        "sparsity": extra.pop("sparsity", None),
    }
    summary = {
        "key": key,
        "status": "complete",
        "model": "toy",
        "saes": sorted(set(frame["sae"])),
        "compression": compression,
        "bits": bits,
        "metrics": metrics,
        "config": nested(
            {
                "bits": bits,
                "model.name": "toy",
                "compression.name": compression,
                "survival.survived": 0.9,
                "survival.blurred": 0.5,
                "runtime.device": "cpu",
                "out_root": str(sweep.parent),
                **(config or {}),
            }
        ),
        "versions": {"numpy": "1"},
        "reference": {"key": "ref0"},
        **extra,
    }
    (d / SUMMARY_FILE).write_text(json.dumps(summary))
    return d


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
        matched={
            "reference_method": "rtn",
            "search": {"sparsity": 0.25, "converged": True},
            "reference": {"q_ppl": 12.0},
            "overlap": {"jaccard": 0.5, "spearman": 0.75, "n_damaged_a": 3, "n_damaged_b": 4},
        },
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
    assert (m["reference_ppl"], m["pruned_ppl"], m["converged"]) == (12.0, 12.5, True)


def test_overlap_recomputed_without_matched_block(tmp_path: Path) -> None:
    root = tmp_path / "s"
    write_job(root, "a" * 16)  # damaged: features 5, 6, 7
    write_job(
        root,
        "b" * 16,
        compression="magnitude_matched",
        sparsity=0.3,
        r=[0.99, 0.95, 0.93, 0.92, 0.5, 0.95, 0.6, 0.1, np.nan, np.nan],
    )  # damaged 4, 6, 7
    m = matched(collect([root])).iloc[0]
    assert m["jaccard"] == pytest.approx(2 / 4)
    assert (m["n_damaged_reference"], m["n_damaged_pruned"]) == (3, 3)
    assert m["source"] == f"recomputed from job {'a' * 16}"


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


class FakeFile:
    """wandb's File: download() writes the stored JSON under root."""

    def __init__(self, path: str, payload: dict) -> None:
        self.path, self.payload = path, payload

    def download(self, root: str, replace: bool = False):
        target = Path(root) / self.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(self.payload))
        return open(target)


class FakeRun:
    """Just the wandb public-API Run attributes the loader uses."""

    def __init__(self, run_id: str, config: dict, summary: dict, table: dict | None) -> None:
        self.id, self.path, self.state = run_id, ["ent", "proj", run_id], "finished"
        self.config, self.summary, self.table = config, summary, table

    def file(self, path: str) -> FakeFile:
        return FakeFile(path, self.table)

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
    flat = {f"metrics/{k}": v for k, v in summary["metrics"].items()}
    config = {"key": "a" * 16, "bits": 4, "model": {"name": "toy"}, "compression": {"name": "rtn"}}
    good = FakeRun("r1", config, {**flat, "features": {"path": "media/table/f.table.json"}}, table)
    empty = FakeRun("r2", {**config, "key": "f" * 16}, flat, None)
    api = FakeApi([good, empty])
    col = load_wandb("proj", "toy_sweep", entity="ent", api=api)
    assert api.calls == [("ent/proj", {"group": "toy_sweep"})]
    assert col.jobs["key"].tolist() == ["a" * 16]
    assert "no logged 'features' table" in col.skipped["reason"].iloc[0]
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
        "import sys, analysis.__main__, analysis.report, analysis.from_wandb, "
        "analysis.features; heavy = {'torch', 'transformer_lens', 'sae_lens', 'hydra', "
        "'sklearn'} & set(sys.modules); assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
