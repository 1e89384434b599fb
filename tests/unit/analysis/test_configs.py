"""analysis/ never pools configurations: every row, series and CI is one config, named by its
varying keys; the SAE is a dimension; corrupt job files are skipped with a one-line reason."""

import json
import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from synthetic import HOOK, R, features_frame, write_job

import analysis.figures.base as figures_base
import analysis.figures.compare as fc
import analysis.figures.ppl as fp
import analysis.figures.predict as fpr
import analysis.figures.survival as fs
from analysis.figures import make_figures
from analysis.formatting import config_value, number, percent
from analysis.load.collect import collect
from analysis.load.configs import short_names
from analysis.tables.features import worst_features
from analysis.tables.fit import fidelity, fit_names, sae_fit
from analysis.tables.headline import headline, headline_names
from analysis.tables.summarize import label, series_groups, survival_summary
from conftest import ROOT
from sweep.results.files import FEATURES_FILE, JOBS_DIR, SUMMARY_FILE
from sweep.results.summary import (
    FidelitySummary,
    MarginalAUC,
    Prediction,
    Roc,
    SaeFit,
    SaeFitPair,
)

ALL_SURVIVE = [0.99, 0.98, 0.97, 0.96, 0.95, 0.94, 0.93, 0.92, np.nan, np.nan]
GROUP = {"compression.granularity": "group", "compression.group_size": 32}
CHANNEL = {"compression.granularity": "channel", "compression.group_size": None}


@pytest.fixture
def figs(monkeypatch: pytest.MonkeyPatch) -> dict[str, plt.Figure]:
    """Figure name → the matplotlib figure, captured as each figure module saves it."""
    seen: dict[str, plt.Figure] = {}
    real = figures_base.save

    def spy(fig, out, name, *args):
        seen[name] = fig
        return real(fig, out, name, *args)

    for module in (fc, fp, fpr, fs):
        monkeypatch.setattr(module, "save", spy)
    return seen


def legend(fig: plt.Figure) -> list[str]:
    """The texts of a figure's figure-level legend(s)."""
    return [t.get_text() for lg in fig.legends for t in lg.get_texts()]


def marginal(auc: float) -> MarginalAUC:
    return MarginalAUC(auc=auc, auc_abs=max(auc, 1 - auc), sign="+" if auc > 0.5 else "-", n=8)


PREDICTION = Prediction(
    estimable=True,
    reason=None,
    n=8,
    n_positive=5,
    model="logistic",
    k=2,
    label="survived",
    predictors=["fp_mean", "fp_max", "enc_norm"],
    dropped=[],
    auc=0.8,
    roc=Roc(fpr=[0.0, 0.5, 1.0], tpr=[0.0, 0.8, 1.0]),
    marginal={"fp_mean": marginal(0.45), "fp_max": marginal(0.9), "enc_norm": marginal(0.2)},
)


def granularity_sweep(root: Path) -> Path:
    """rtn at 3 bits per channel (5/8 survive) and per group of 32 (8/8); 4 bits per channel."""
    write_job(root, "a" * 16, bits=3, r=R, config=CHANNEL, prediction={HOOK: PREDICTION})
    write_job(root, "b" * 16, bits=3, r=ALL_SURVIVE, config=GROUP)
    write_job(root, "c" * 16, bits=4, r=ALL_SURVIVE, config=CHANNEL)
    return root


def test_granularities_at_one_bit_width_are_two_labelled_rows_with_own_cis(
    tmp_path: Path, figs: dict[str, plt.Figure]
) -> None:
    col = collect([granularity_sweep(tmp_path / "s")])
    t = headline(col, n_boot=500).set_index("config.compression.granularity", append=True)
    at3 = t[t["bits"] == 3].droplevel(0)
    assert sorted(at3.index) == ["channel", "group"]
    assert at3.loc["channel", "pct_survived"] == pytest.approx(62.5)
    assert at3.loc["group", "pct_survived"] == pytest.approx(100.0)
    assert at3.loc["group", "survived_ci95"] == "100.0–100.0"  # not pooled with channel's 5/8
    lo, hi = (float(x) for x in at3.loc["channel", "survived_ci95"].split("–"))
    assert lo < 62.5 < hi < 100
    assert at3.loc["group", "config.compression.group_size"] == "32"
    assert at3.loc["channel", "config.compression.group_size"] == "null"
    names = headline_names(col)
    assert (names["config.compression.granularity"], names["config.compression.group_size"]) == (
        "granularity",
        "group_size",
    )

    s = survival_summary(col, n_boot=200)
    groups = {label(p.iloc[0]): sorted(p["bits"]) for _, p in series_groups(s)}
    assert groups == {
        "toy L1 rtn granularity=channel": [3, 4],
        "toy L1 rtn granularity=group group_size=32": [3],
    }
    make_figures(col, tmp_path / "fig", n_boot=100)
    assert sorted(legend(figs["survival_vs_bits"])) == sorted(groups)
    worst = worst_features(col, bits=3, worst=1)
    assert worst["configuration"].tolist() == [
        "granularity=channel",
        "granularity=group group_size=32",
    ]
    assert len(legend(figs["class_stacks"])) == 3  # one legend of classes; 2 panels (see titles)


def test_figures_read_well(tmp_path: Path, figs: dict[str, plt.Figure]) -> None:
    make_figures(collect([granularity_sweep(tmp_path / "s")]), tmp_path / "fig", n_boot=100)
    (ax,) = figs["survival_vs_bits"].axes
    assert ax.get_legend() is None and figs["survival_vs_bits"].legends  # legend outside
    assert ax.get_ylim()[1] > 100  # markers at 100% are whole
    ecdf = [a for a in figs["r_ecdf"].axes if a.get_visible()]
    assert [a.get_xscale() for a in ecdf] == ["log", "log"]
    assert ecdf[0].get_xlim()[1] == 2  # 1 − r spans up to r = −1
    (ax,) = figs["dppl_vs_degraded"].axes
    assert (ax.get_xscale(), ax.get_yscale()) == ("symlog", "symlog")
    # the two all-surviving jobs share one (degraded, ΔPPL) point: one label, not two piled up
    assert sorted(t.get_text() for t in ax.texts) == ["3b", "3b, 4b"]
    (ax,) = figs["marginal_auc"].axes
    assert [t.get_text() for t in ax.get_yticklabels()] == ["fp_mean", "enc_norm", "fp_max"]
    assert {round(p.get_x(), 9) for p in ax.patches} == {0.5}  # bars start at 0.5
    roc = figs["prediction_roc"].axes[0].get_legend().get_texts()
    assert [t.get_text() for t in roc] == ["3 bits: AUC 0.800\n  on 5 surviving / 3 damaged"]


def test_keys_implied_by_the_method_stay_out_of_labels(tmp_path: Path) -> None:
    root = tmp_path / "s"
    write_job(root, "a" * 16, config={"compression.granularity": "channel"})
    write_job(
        root,
        "b" * 16,
        compression="magnitude_matched",
        sparsity=0.3,
        config={"compression.baseline.name": "rtn"},
    )
    col = collect([root])
    assert sorted(col.dims.varying) == [
        "compression.baseline.name",
        "compression.granularity",
        "compression.name",
    ]
    assert col.dims.labelled == []  # each method's own options: no new information
    assert sorted(label(r) for _, r in col.per_sae.iterrows()) == [
        "toy L1 magnitude_matched",
        "toy L1 rtn",
    ]


def test_config_columns_never_clash_with_measured_ones(tmp_path: Path) -> None:
    root = tmp_path / "s"

    def pruned(sweep: Path, key: str, sparsity: float, measured: float, **more) -> None:
        config = {"compression.sparsity": sparsity, **more}
        write_job(sweep, key, "magnitude", None, sparsity=measured, config=config)

    pruned(root, "a" * 16, 0.3, 0.3)
    pruned(root, "b" * 16, 0.6, 0.6)
    # another sweep, made by a qfeat whose config has one more key
    pruned(tmp_path / "s2", "c" * 16, 0.6, 0.5, **{"new.knob": 1})
    col = collect([root, tmp_path / "s2"])
    t = headline(col, n_boot=50)
    pairs = sorted(zip(t["config.compression.sparsity"], t["sparsity"], strict=True))
    assert pairs == [("0.3", 0.3), ("0.6", 0.5), ("0.6", 0.6)]
    assert "config.new.knob" not in t  # only the other sweep has it: no column, sweep tells
    assert col.dims.values["new.knob"] == [1, None]  # listed in the Configuration section
    assert sorted(col.dims.jobs["extras"]) == ["sparsity=0.3", "sparsity=0.6", "sparsity=0.6"]
    assert t["sweep"].tolist() == ["s", "s", "s2"]


def test_identical_configs_under_two_keys_are_not_pooled(tmp_path: Path) -> None:
    root = tmp_path / "s"
    write_job(root, "a" * 16)
    write_job(root, "b" * 16, r=ALL_SURVIVE)
    s = survival_summary(collect([root]), n_boot=100)
    assert sorted(label(r) for _, r in s.iterrows()) == [
        f"toy L1 rtn job={'a' * 16}",
        f"toy L1 rtn job={'b' * 16}",
    ]


def sae_sweep(root: Path) -> Path:
    """Two SAE families at the same hook, bits 3 and 4: relu loses features, topk does not."""
    for i, (name, r3) in enumerate((("tiny-relu", R), ("tiny-topk", ALL_SURVIVE))):
        write_job(root, f"{i}3".ljust(16, "0"), bits=3, r=r3, config={"sae.name": name})
        write_job(root, f"{i}4".ljust(16, "0"), bits=4, r=ALL_SURVIVE, config={"sae.name": name})
    return root


def test_sae_family_is_a_dimension_with_its_own_figure(
    tmp_path: Path, figs: dict[str, plt.Figure]
) -> None:
    col = collect([sae_sweep(tmp_path / "s")])
    t = headline(col, n_boot=100)
    assert headline_names(col)["config.sae.name"] == "sae"
    pct = t.set_index(["config.sae.name", "bits"])["pct_survived"]
    assert (pct["tiny-relu", 3], pct["tiny-topk", 3]) == (62.5, 100.0)
    written, skipped = make_figures(col, tmp_path / "fig", n_boot=100)
    assert "survival_per_sae" in {f.name for f in written}, skipped
    assert sorted(legend(figs["survival_per_sae"])) == [
        "toy L1 sae=tiny-relu",
        "toy L1 sae=tiny-topk",
    ]
    assert sorted(legend(figs["survival_vs_bits"])) == [
        "toy L1 rtn sae=tiny-relu",
        "toy L1 rtn sae=tiny-topk",
    ]


def test_sae_fit_and_fidelity_rows_name_the_sae_family(tmp_path: Path) -> None:
    """Families swept at one hook share the hook name: their fit and fidelity rows must still
    say which SAE they are (the rows are per job, never pooled; unlabelled they look alike)."""
    root = tmp_path / "s"
    for i, (name, ev) in enumerate((("tiny-relu", 0.8), ("tiny-topk", 0.9))):
        fit = SaeFit(explained_variance=ev, l0=40.0, ce_loss=3.0, ce_loss_spliced=3.1)
        block = FidelitySummary(
            n_features=2,
            n_damaged=1,
            alpha=4.0,
            mean_steer_r_survived=ev,
            mean_steer_r_damaged=None,
            spearman_r_vs_steer_r=None,
            mean_ablate_r_survived=None,
            mean_ablate_r_damaged=None,
            spearman_r_vs_ablate_r=None,
        )
        write_job(
            root,
            f"{i}".ljust(16, "0"),
            config={"sae.name": name},
            sae_fit={HOOK: SaeFitPair(fp=fit, q=fit)},
            fidelity={HOOK: block},
        )
    col = collect([root])
    for table, value in (
        (sae_fit(col), "fp_explained_variance"),
        (fidelity(col), "mean_steer_r_survived"),
    ):
        assert list(table.columns[:5]) == ["model", "compression", "bits", "sae", "config.sae.name"]
        assert table.set_index("config.sae.name")[value].to_dict() == {
            "tiny-relu": 0.8,
            "tiny-topk": 0.9,
        }
    assert fit_names(col)["fidelity"]["config.sae.name"] == "sae"


def test_two_hooks_in_one_job_are_two_saes(tmp_path: Path, figs: dict[str, plt.Figure]) -> None:
    other = features_frame(ALL_SURVIVE).assign(sae="blocks.3.hook_resid_post")
    frame = pd.concat([features_frame(R), other], ignore_index=True).astype({"sae": "string"})
    write_job(tmp_path / "s", "a" * 16, frame=frame)
    col = collect([tmp_path / "s"])
    make_figures(col, tmp_path / "fig", n_boot=100)
    assert sorted(legend(figs["survival_per_sae"])) == ["toy L1", "toy L3"]


def test_one_sae_skips_the_per_sae_figure_with_a_reason(tmp_path: Path) -> None:
    col = collect([granularity_sweep(tmp_path / "s")])
    _, skipped = make_figures(col, tmp_path / "fig", n_boot=100)
    assert dict(skipped)["survival_per_sae"].startswith("one SAE in the sweep (toy L1)")


def test_corrupt_jobs_are_skipped_with_one_line_each(tmp_path: Path) -> None:
    root = tmp_path / "s"
    write_job(root, "a" * 16, bits=3)
    write_job(root, "b" * 16, bits=4)
    garbage = write_job(root, "c" * 16)
    (garbage / SUMMARY_FILE).write_bytes(bytes(range(256)) * 4)  # binary, not UTF-8
    truncated = write_job(root, "d" * 16)
    text = (truncated / SUMMARY_FILE).read_text()
    (truncated / SUMMARY_FILE).write_text(text[: len(text) // 2])
    broken = write_job(root, "e" * 16)
    (broken / FEATURES_FILE).write_bytes(b"PAR1" + bytes(200) + b"PAR1")
    wrong = write_job(root, "f" * 16)
    summary = json.loads((wrong / SUMMARY_FILE).read_text())
    (wrong / SUMMARY_FILE).write_text(json.dumps({**summary, "bits": "x", "saes": 3}))

    done = subprocess.run(
        [sys.executable, "-m", "analysis", str(root), "--n-boot", "50"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    lines = [ln for ln in done.stderr.splitlines() if "skipped " in ln and JOBS_DIR in ln]
    reasons = {Path(ln.split("skipped ")[1].split(":")[0]).name: ln for ln in lines}
    assert sorted(reasons) == ["c" * 16, "d" * 16, "e" * 16, "f" * 16]
    assert "summary.json unreadable (not UTF-8 JSON)" in reasons["c" * 16]
    assert "summary.json unreadable (not UTF-8 JSON)" in reasons["d" * 16]
    assert "features.parquet unreadable" in reasons["e" * 16]
    assert "summary.json saes: Input should be a valid list" in reasons["f" * 16]
    report = (root / "report" / "report.html").read_text()
    assert "2 jobs (4 skipped)" in report
    for key in ("c", "d", "e", "f"):
        assert f"{key * 16}</td>" in report
    assert "not UTF-8 JSON" in report and "features.parquet unreadable" in report


def test_number_and_config_formats() -> None:
    assert [number(v) for v in (61.4321, 0.0042, 12345.6, 99.9999, 3, 2.5e-5)] == [
        "61.4",
        "0.00420",
        "12300",
        "100",
        "3",
        "2.50e-05",
    ]
    assert percent(99.2187) == "99.2"
    assert [config_value(v) for v in (3, True, None, "group", ("attention", "mlp"))] == [
        "3",
        "true",
        "null",
        "group",
        "[attention, mlp]",
    ]
    assert short_names(["sae.name", "compression.group_size", "seed", "data.seed"]) == {
        "sae.name": "sae",
        "compression.group_size": "group_size",
        "seed": "seed",
        "data.seed": "data.seed",
    }
