"""Per-part attribution, additivity and the cards' worst part on a synthetic partial sweep,
each against a brute-force computation from the job files themselves."""

import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import pearsonr
from synthetic import ATTRIBUTION_HOOKS, INACTIVE, attribution_sweep, two_sae_sweep

from analysis.figures import registry
from analysis.figures.attribution import attribution_heatmap
from analysis.figures.base import Context, SkipFigure
from analysis.formatting import number
from analysis.load.collect import collect
from analysis.load.contexts import CONTEXT_COLUMNS
from analysis.report.cards import build_cards
from analysis.tables.additivity import additivity, additivity_stats
from analysis.tables.attribution import attribution_table, part_label, scope, worst_parts
from analysis.tables.headline import write_tables
from sweep.config.compression import KINDS, expand_targets
from sweep.results.files import CONTEXTS_FILE, FEATURES_FILE, JOBS_DIR, TOKENS_FILE

N = 12


@pytest.fixture
def sweep(tmp_path: Path) -> tuple[Path, dict]:
    root = tmp_path / "parts"
    return root, attribution_sweep(root, bits=(3, 4), n=N)


def features(root: Path, key: str) -> pd.DataFrame:
    """A job's features.parquet as written, indexed by (sae, feature)."""
    f = pd.read_parquet(root / JOBS_DIR / key / FEATURES_FILE)
    return f.astype({"sae": str}).set_index(["sae", "feature"])


def no_contexts(job: Path) -> None:
    """Empty contexts and one token: the job can be carded (without context windows)."""
    pd.DataFrame({c: pd.Series(dtype=object) for c in CONTEXT_COLUMNS}).to_parquet(
        job / CONTEXTS_FILE, index=False
    )
    tokens = {"seq": [0], "pos": [0], "token_id": [1], "bytes": [b"a"]}
    pd.DataFrame(tokens).to_parquet(job / TOKENS_FILE, index=False)


def expected_label(targets: list[str], blocks: list[int] | None) -> str:
    if blocks is None:
        return "whole model"
    what = targets[0] if len(targets) == 1 else "all kinds"
    return f"block {blocks[0]} · {what}"


def test_selection_scopes_and_labels() -> None:
    assert scope(KINDS, None) == "whole"
    assert scope(("mlp_in",), (2,)) == "part"
    assert scope(KINDS, (1,)) == "block"
    assert scope(("attn_out",), None) == "kind"
    assert scope(("mlp_in", "mlp_out"), (0, 1)) == "other"
    assert part_label(expand_targets(["mlp"]), None) == "every block · mlp"
    assert part_label(("attn_qkv", "mlp_out"), (0, 3)) == "blocks 0,3 · attn_qkv+mlp_out"


def test_attribution_table_matches_brute_force(sweep: tuple[Path, dict]) -> None:
    root, jobs = sweep
    table = attribution_table(collect([root]))
    assert len(table) == len(jobs) * len(ATTRIBUTION_HOOKS)
    for key, (bits, targets, blocks) in jobs.items():
        f = features(root, key)
        for hook in ATTRIBUTION_HOOKS:
            active = f.loc[hook][f.loc[hook]["active"]]
            damaged = sum(c != "survived" for c in active["class"])
            row = table[
                table["bits"].eq(bits)
                & table["part"].eq(expected_label(targets, blocks))
                & table["sae"].eq(hook)
            ]
            assert len(row) == 1
            row = row.iloc[0]
            assert row["n_active"] == N - len(INACTIVE)
            assert row["layer"] == int(hook.split(".")[1])
            assert row["pct_damaged"] == pytest.approx(100 * damaged / len(active))
            assert row["mean_damage"] == pytest.approx(np.mean(1 - active["r"]))
    # single parts first (by block, then kind), then the block job, then the whole model
    parts = list(dict.fromkeys(table.loc[table["bits"].eq(3), "part"]))
    assert parts[: len(KINDS)] == [f"block 0 · {k}" for k in KINDS]
    assert parts[-2:] == ["block 0 · all kinds", "whole model"]


def brute_additivity(root: Path, jobs: dict, bits: int, hooks: tuple[str, ...]) -> dict:
    """Summed vs whole damage feature by feature in plain Python, then scipy's Pearson r."""
    singles = [k for k, (b, t, blk) in jobs.items() if b == bits and len(t) == 1]
    whole = next(k for k, (b, t, blk) in jobs.items() if b == bits and blk is None)
    frames = {k: features(root, k) for k in [*singles, whole]}
    summed, total, ratios = [], [], []
    for hook in hooks:
        for feature in range(N):
            if feature in INACTIVE:
                continue
            s = sum(1 - float(frames[k].loc[(hook, feature), "r"]) for k in singles)
            w = 1 - float(frames[whole].loc[(hook, feature), "r"])
            summed.append(s)
            total.append(w)
            if frames[whole].loc[(hook, feature), "class"] != "survived":
                ratios.append(w / s)
    return {
        "n_parts": len(singles),
        "pearson_r": pearsonr(summed, total)[0],
        "median_ratio": statistics.median(ratios),
        "n_damaged_whole": len(ratios),
        "pct_underestimated": 100
        * sum(s < w for s, w in zip(summed, total, strict=True))
        / len(summed),
        "mean_summed": statistics.fmean(summed),
        "mean_whole": statistics.fmean(total),
    }


def test_additivity_matches_brute_force_and_scipy(sweep: tuple[Path, dict]) -> None:
    root, jobs = sweep
    table = additivity(collect([root]))
    assert len(table) == 2 * (len(ATTRIBUTION_HOOKS) + 1)  # per bits: each layer, then all
    assert table["complete"].all()
    for bits in (3, 4):
        cuts = [(i, (h,)) for i, h in enumerate(ATTRIBUTION_HOOKS)] + [("all", ATTRIBUTION_HOOKS)]
        for layer, hooks in cuts:
            want = brute_additivity(root, jobs, bits, hooks)
            row = table[table["bits"].eq(bits) & table["layer"].astype(str).eq(str(layer))]
            got = row.iloc[0]
            assert got["n_active"] == (N - len(INACTIVE)) * len(hooks)
            for name, value in want.items():
                assert got[name] == pytest.approx(value), (bits, layer, name)


def test_additivity_stats_edge_cases() -> None:
    stats = additivity_stats(np.array([0.1, 0.1]), np.array([0.2, 0.3]), np.array([True, False]))
    assert np.isnan(stats["pearson_r"])  # summed damage constant: r undefined
    assert stats["median_ratio"] == pytest.approx(2.0)
    assert stats["pct_underestimated"] == 100.0
    empty = additivity_stats(np.array([]), np.array([]), np.array([], bool))
    assert empty["n_active"] == 0 and np.isnan(empty["median_ratio"])


def test_parts_that_miss_a_matrix_are_flagged(sweep: tuple[Path, dict]) -> None:
    root, jobs = sweep
    missing = next(k for k, (b, t, blk) in jobs.items() if b == 3 and t == ["mlp_out"])
    for path in (root / JOBS_DIR / missing).iterdir():
        path.unlink()
    (root / JOBS_DIR / missing).rmdir()
    table = additivity(collect([root]))
    assert set(table.loc[table["bits"].eq(3), "n_parts"]) == {2 * len(KINDS) - 1}
    assert not table.loc[table["bits"].eq(3), "complete"].any()
    assert table.loc[table["bits"].eq(4), "complete"].all()


def test_tables_and_figure_only_for_partial_sweeps(tmp_path: Path) -> None:
    root = tmp_path / "parts"
    attribution_sweep(root, bits=(3,), n=N)
    col = collect([root])
    tables, _ = write_tables(col, tmp_path / "t", n_boot=10)
    additive = next(t for t in tables if t.name == "additivity")
    assert "attribution" in {t.name for t in tables}
    assert "rtn at 3 bits (all layers, 8 parts)" in additive.caption
    assert attribution_heatmap in registry()
    figure = attribution_heatmap(Context(col, pd.DataFrame(), 1, (0.9, 0.5)), tmp_path / "f")
    assert figure.png.stat().st_size > 0 and figure.svg.is_file()

    plain = collect([two_sae_sweep(tmp_path / "plain")])  # default targets: nothing partial
    assert attribution_table(plain).empty and additivity(plain).empty
    with pytest.raises(SkipFigure, match="no single-part"):
        attribution_heatmap(Context(plain, pd.DataFrame(), 1, (0.9, 0.5)), tmp_path / "f2")


def test_cards_name_the_part_that_damages_the_feature_most(sweep: tuple[Path, dict]) -> None:
    root, jobs = sweep
    whole = next(k for k, (b, t, blk) in jobs.items() if b == 3 and blk is None)
    no_contexts(root / JOBS_DIR / whole)
    cards, _ = build_cards(collect([root]), n=4)
    assert len(cards) == 4
    singles = {k: t for k, (b, t, blk) in jobs.items() if b == 3 and len(t) == 1}
    for card in cards:
        hook, feature = card.title.split(" · feature ")
        r = {k: features(root, k).loc[(hook, int(feature)), "r"] for k in singles}
        worst = min(r, key=r.get)
        b = jobs[worst][2]
        want = f"block {b[0]} · {singles[worst][0]} (r {number(r[worst])})"
        assert card.stats["worst_part"] == want


def test_no_worst_part_without_single_part_jobs(tmp_path: Path) -> None:
    root = two_sae_sweep(tmp_path / "plain")
    no_contexts(root / JOBS_DIR / ("a" * 16))
    cards, _ = build_cards(collect([root]), n=2)
    assert cards and all("worst_part" not in c.stats for c in cards)


def test_no_worst_part_where_every_part_leaves_the_feature_as_fp(tmp_path: Path) -> None:
    root = tmp_path / "parts"
    jobs = attribution_sweep(root, bits=(3,), n=N)
    for key, (_, targets, _) in jobs.items():
        if len(targets) == 1:  # feature 0 of the first SAE: r = 1 under every single part
            path = root / JOBS_DIR / key / FEATURES_FILE
            f = pd.read_parquet(path)
            f.loc[0, ["r", "damage", "class"]] = [1.0, 0.0, "survived"]
            f.to_parquet(path, index=False)
    worst = worst_parts(collect([root]))
    assert not worst["feature"].eq(0).where(worst["sae"].eq(ATTRIBUTION_HOOKS[0]), False).any()
    assert worst["sae"].eq(ATTRIBUTION_HOOKS[0]).any()
