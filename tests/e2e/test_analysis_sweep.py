"""analysis/ end to end on a small real tiny-model sweep: figures, report HTML, Chromium render."""

import shutil
import struct
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from analysis.__main__ import main
from analysis.figures import make_figures
from analysis.load.collect import collect
from analysis.tables.headline import headline
from analysis.tables.overlap import matched_pairs
from analysis.tables.summarize import label, series_groups, survival_summary
from conftest import ROOT, SUBPROCESS_TIMEOUT_S
from sweep.results.columns import SURVIVED

SHRINK = [
    "data.n_sequences=16",
    "data.seq_len=64",
    "eval.sliding_window_stride=null",  # sliding-window PPL is not needed here; saves ~40 s
    "survival.min_active_tokens=3",
    "calibration_sequences=4",
    "fidelity.max_features=4",  # enough for the fidelity figures, and fast
    "runtime.device=cpu",
    "runtime.progress=false",
    "wandb.mode=disabled",
    "sweep_name=analysis_test",
]
# Options of one method only go with that method's launch.
SWEEPS = (
    ["-m", "bits=3,8", "compression=rtn", *SHRINK],
    ["-m", "bits=3,8", "compression=magnitude_matched", "compression.max_steps=8", *SHRINK],
)


# A fifth job in the same sweep: RTN per group of 32 at 3 bits, beside the per-channel one.
GROUP_JOB = [
    "bits=3",
    "compression=rtn",
    "compression.granularity=group",
    "compression.group_size=32",
]


@pytest.fixture(scope="session")
def real_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real sweep on the embedded tiny model: a 4-job multirun (rtn / matched pruning × 3 / 8
    bits) plus rtn per group of 32 at 3 bits (two granularities at one bit-width)."""
    out = tmp_path_factory.mktemp("analysis_sweep")
    for args in (*SWEEPS, [*GROUP_JOB, *SHRINK]):
        subprocess.run(
            [sys.executable, "launch.py", *args, f"out_root={out}"],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
            timeout=SUBPROCESS_TIMEOUT_S,
        )
    return out / "analysis_test"


@pytest.fixture(scope="session")
def report(real_sweep: Path) -> Path:
    """The report folder written by the CLI for the real sweep."""
    assert main([str(real_sweep), "--n-boot", "500", "-q"]) == 0
    return real_sweep / "report"


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


class Images(HTMLParser):
    """Collects figure <img> sources (not feature-card scatters) and figure ids while parsing."""

    def __init__(self) -> None:
        super().__init__()
        self.srcs: list[str] = []
        self.ids: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "img" and a.get("class") != "scatter":
            self.srcs.append(a.get("src") or "")
        if tag == "figure":
            self.ids.append(a.get("id") or "")


def test_every_figure_has_expected_pixel_size(real_sweep: Path, tmp_path: Path) -> None:
    col = collect([real_sweep])
    assert len(col.jobs) == 5 and col.skipped.empty
    figures, skipped = make_figures(col, tmp_path, n_boot=200)
    names = {f.name for f in figures} | {n for n, _ in skipped}
    assert {"survival_vs_bits", "class_stacks", "r_ecdf", "dppl_vs_degraded"} <= names
    assert {"damage_scatter", "overlap_vs_bits"} & {f.name for f in figures}
    assert {"steer_r_vs_r", "steer_r_vs_dppl", "ablate_r_vs_r"} <= {f.name for f in figures}
    for f in figures:
        assert f.png.stat().st_size > 1000 and f.svg.stat().st_size > 1000
        assert png_size(f.png) == f.size_px
        assert min(f.size_px) >= 900  # 300 dpi on a ≥ 3-inch canvas


def test_real_granularities_are_not_pooled(real_sweep: Path) -> None:
    col = collect([real_sweep])
    t = headline(col, n_boot=500)
    rtn3 = t[(t["compression"] == "rtn") & (t["bits"] == 3)]
    assert sorted(rtn3["config.compression.granularity"]) == ["channel", "group"]
    for _, row in rtn3.iterrows():  # pooled, the channel row's CI excluded its own value
        lo, hi = (float(x) for x in row["survived_ci95"].split("–"))
        assert lo <= round(row["pct_survived"], 1) <= hi
    labels = {label(p.iloc[0]) for _, p in series_groups(survival_summary(col, n_boot=100))}
    # magnitude_matched has no granularity of its own (its baseline's, compression.baseline.*,
    # does not vary among the matched jobs), so the name says which node it belongs to
    assert labels == {
        "tiny L2 rtn compression.granularity=channel",
        "tiny L2 rtn compression.granularity=group group_size=32",
        "tiny L2 magnitude_matched",
    }
    pairs = matched_pairs(col.jobs, col.dims.varying)
    assert len(pairs) == 2
    assert all(
        partner is not None and partner["config.compression.granularity"] == "channel"
        for _, partner in pairs
    )


def test_report_html_parses_and_embeds_every_figure(real_sweep: Path, report: Path) -> None:
    pngs = sorted(p.stem for p in (report / "figures").glob("*.png"))
    parser = Images()
    parser.feed((report / "report.html").read_text())
    assert sorted(parser.ids) == pngs
    assert len(parser.srcs) == len(pngs)
    assert all(s.startswith("data:image/png;base64,") for s in parser.srcs)
    md = (report / "report.md").read_text()
    assert all(f"figures/{p}.png" in md for p in pngs)
    for name in ("headline", "matched", "sae_fit", "fidelity"):
        assert (report / "tables" / f"{name}.csv").stat().st_size > 0
    features = collect([real_sweep]).features
    damaged = features["active"].astype(bool) & (features["class"] != SURVIVED)
    per_job = damaged.groupby([features["sweep"], features["key"]]).sum()
    carded = sum(min(8, int(n)) for n in per_job)  # up to 8 most damaged per job
    assert carded > 8
    cards = (report / "cards.html").read_text()
    assert cards.count('class="card"') == carded
    assert cards.count('class="scatter"') == carded and 'class="tk c"' in cards  # real contexts


@pytest.mark.skipif(
    shutil.which("chromium") is None,
    reason="chromium not installed (apt-get install -y chromium) - report rendering not checked",
)
def test_report_renders_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    done = subprocess.run(
        [
            "bash",
            str(ROOT / "scripts" / "render_report.sh"),
            str(report / "report.html"),
            str(shot),
            "1280,2000",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert png_size(shot) == (1280, 2000)
