"""The analysis of uncertainty and overlap on synthetic sweeps: the overlap matrix of three
methods against sklearn and scipy, the settling table and warning, intervals by firing tokens."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import jaccard_score
from synthetic import features_frame, write_job

from analysis.figures import make_figures
from analysis.figures.uncertainty import interval_by_tokens
from analysis.load.collect import collect
from analysis.report.page import write_report
from analysis.tables.headline import headline
from analysis.tables.uncertainty import overlap_pairs, token_set
from sweep.derive.classes import Rules
from sweep.results.summary import PrefixPoint, SurvivalInterval, Uncertainty

# Three methods' r on the same 10 features (the last two inactive).
METHODS = {
    "rtn": [0.99, 0.95, 0.93, 0.92, 0.91, 0.8, 0.6, 0.1, np.nan, np.nan],
    "magnitude_matched": [0.99, 0.85, 0.93, 0.7, 0.95, 0.8, 0.4, 0.2, np.nan, np.nan],
    "noise": [0.6, 0.95, 0.5, 0.92, 0.91, 0.97, 0.96, 0.3, np.nan, np.nan],
}


def record(half: float, full: float, lo: float, hi: float) -> Uncertainty:
    """An Uncertainty block with survival `half` on 500 tokens and `full` on 1000."""
    points = [
        PrefixPoint(
            n_sequences=n // 100,
            n_tokens=n,
            n_active=8,
            frac_survived=s,
            frac_blurred=1 - s,
            frac_destroyed=0.0,
            mean_r=0.9,
        )
        for n, s in ((250, 0.5), (500, half), (1000, full))
    ]
    interval = SurvivalInterval(
        frac_survived_lo=lo,
        frac_survived_hi=hi,
        frac_survived_resampled=(lo + hi) / 2,
        mean_r_lo=0.89,
        mean_r_hi=0.91,
        mean_r_resampled=0.9,
    )
    settled = abs(full - half) <= (hi - lo) / 2
    return Uncertainty(
        n_blocks=3,
        sequences_per_block=[2, 3, 5],
        n_boot=100,
        level=0.95,
        seed=0,
        job=interval,
        per_sae={"blocks.1.hook_resid_post": interval},
        prefix_order=[0, 1, 2],
        convergence=points,
        settled=settled,
        settle_note="settled" if settled else "not settled: survival moved",
    )


@pytest.fixture
def three(tmp_path: Path) -> Path:
    """rtn, matched pruning and matched noise at 4 bits on the same FP reference."""
    root = tmp_path / "noise_control"
    for i, (name, r) in enumerate(METHODS.items()):
        settled = (0.6, 0.625) if name == "rtn" else (0.3, 0.625)
        write_job(root, f"{i}" * 16, compression=name, r=r, uncertainty=record(*settled, 0.55, 0.7))
    return root


def test_overlap_of_every_pair_equals_sklearn_and_scipy(three: Path) -> None:
    col = collect([three])
    pairs = overlap_pairs(col)
    assert len(pairs) == 3  # each unordered pair of distinct jobs once
    for _, row in pairs.iterrows():
        a, b = (np.array(METHODS[n.split()[0]][:8]) for n in (row["job_a"], row["job_b"]))
        assert row["jaccard"] == pytest.approx(jaccard_score(a < 0.9, b < 0.9))
        assert row["spearman"] == pytest.approx(spearmanr(1 - a, 1 - b).statistic)


def test_the_overlap_matrix_and_convergence_figures_are_drawn(three: Path, tmp_path) -> None:
    written, skipped = make_figures(collect([three]), tmp_path / "figures", n_boot=50)
    names = {f.name for f in written}
    assert {"overlap_matrix", "convergence", "uncertainty_by_tokens"} <= names, skipped
    for f in written:
        assert f.png.stat().st_size > 1000


def test_unsettled_jobs_are_flagged_in_table_and_report(three: Path) -> None:
    col = collect([three])
    t = token_set(col).set_index("compression")
    assert t.loc["rtn", "settled"] and not t.loc["noise", "settled"]
    assert t.loc["noise", "pct_survived_half"] == pytest.approx(30.0)
    assert t.loc["rtn", "token_interval"] == "55.0–70.0"
    page = write_report(col, three / "report", n_boot=50).read_text()
    assert "Warning: survival has not settled with the number of tokens in 2 of 3 jobs" in page


def test_headline_shows_the_uncertain_share_and_token_interval(three: Path) -> None:
    col = collect([three])
    t = headline(col, n_boot=50).set_index("compression")
    f = col.features[col.features["active"]]
    share = f.groupby("compression")["uncertain"].mean()
    for method in METHODS:
        assert t.loc[method, "pct_uncertain"] == pytest.approx(100 * share[method])
        assert t.loc[method, "survived_tokens"] == "55.0–70.0"
    assert 0 < share.max() < 1


def test_interval_by_tokens_counts_straddling_features_per_bin() -> None:
    frame = features_frame([0.95, 0.95, 0.95, 0.6, 0.3, np.nan])
    frame["fp_active_count"] = [3, 4, 30, 30, 30, 0]
    frame["r_lo"] = [0.85, 0.91, 0.92, 0.45, 0.1, np.nan]
    frame["r_hi"] = [0.99, 0.99, 0.97, 0.7, 0.4, np.nan]
    t = interval_by_tokens(frame, Rules(10, 0.9, 0.5))
    assert t[["low", "high", "n"]].values.tolist() == [[3, 5, 2], [20, 50, 3]]
    assert t["share"].tolist() == pytest.approx([0.5, 1 / 3])
    assert t["width"].tolist() == pytest.approx([0.11, 0.25])


def test_jobs_without_intervals_are_still_read(tmp_path: Path) -> None:
    root = tmp_path / "old"
    old = features_frame(METHODS["rtn"]).drop(columns=["r_lo", "r_hi", "r_defined", "uncertain"])
    write_job(root, "f" * 16, frame=old)
    col = collect([root])
    assert not col.features["uncertain"].any() and col.features["r_lo"].isna().all()
    assert pd.isna(headline(col, n_boot=20)["pct_uncertain"].iloc[0])
