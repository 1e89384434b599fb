"""Figures on quantization vs matched pruning: damage per feature and overlap per bits."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from analysis.figures.base import (
    Context,
    Figure,
    SkipFigure,
    legend_below,
    legend_rows,
    panels,
    save,
    wrapped,
)
from analysis.formatting import number
from analysis.tables.overlap import matched_pairs, overlap_table, paired_damage, pairwise_overlap
from analysis.tables.summarize import label, series_groups
from sweep.derive.overlap import spearman


def damage_scatter(ctx: Context, out: Path) -> Figure:
    """Damage (1 − r) under the baseline quantization vs matched pruning, one panel per bits."""
    pairs = [(j, r) for j, r in matched_pairs(ctx.col.jobs, ctx.col.dims.varying) if r is not None]
    if not pairs:
        raise SkipFigure(
            "no matched-pruning job with its baseline (e.g. RTN) job in the same sweep"
        )
    f = ctx.col.features
    fig, axes = panels(len(pairs), width=3.8, height=3.6, ncols=4)
    for ax, (job, partner) in zip(axes, pairs, strict=True):
        mine = f[f["sweep"] == job["sweep"]]
        d = paired_damage(mine[mine["key"] == partner["key"]], mine[mine["key"] == job["key"]])
        ax.scatter(d["damage_a"], d["damage_b"], s=4, alpha=0.4, lw=0)
        hi = np.nanmax([d["damage_a"].max(), d["damage_b"].max(), 1e-3])
        ax.plot([0, hi], [0, hi], color="grey", ls=":", lw=1)
        rho = job["overlap_spearman"]
        if pd.isna(rho):
            rho = spearman(d["damage_a"].to_numpy(), d["damage_b"].to_numpy())[0]
        name = f"{label(job, ctx.n_sweeps, with_bits=True)}, sparsity {number(job['sparsity'])}"
        ax.set_title(
            f"{wrapped(name, 40)}\n"
            f"Spearman ρ = {'undefined' if pd.isna(rho) else number(rho)} (n={len(d)})",
            fontsize=9,
        )
        ax.xaxis.set_major_locator(MaxNLocator(4))
        ax.ticklabel_format(axis="both", style="sci", scilimits=(-2, 3))
        ax.set_xlabel(f"damage under {partner['compression']}")
        ax.set_ylabel("damage under matched pruning")
        ax.grid(alpha=0.3)
    return save(
        fig,
        out,
        "damage_scatter",
        "Quantization vs matched pruning: damage per feature",
        "At equal perplexity, do quantization and pruning damage the same features?",
    )


def overlap_vs_bits(ctx: Context, out: Path) -> Figure:
    """Jaccard of damaged sets and Spearman of damage vs bit-width, per model."""
    t = overlap_table(ctx.col.jobs)
    if t.empty:
        raise SkipFigure("no matched-pruning jobs")
    if t[["jaccard", "spearman"]].isna().all().all():
        raise SkipFigure("Jaccard and Spearman undefined for every matched job (no damage)")
    groups = series_groups(t, ["sweep", "model", "saes", "extras"])
    fig, (ax_j, ax_s) = plt.subplots(
        1, 2, figsize=(9.6, 3.8 + legend_rows(len(groups))), layout="constrained"
    )
    for _, part in groups:
        part = part.sort_values("bits")
        first = part.iloc[0]
        name = " ".join(str(first[c]) for c in ("model", "saes", "extras") if first[c])
        name = name if ctx.n_sweeps == 1 else f"{first['sweep']} {name}"
        ax_j.plot(part["bits"], part["jaccard"], marker="o", label=name)
        ax_s.plot(part["bits"], part["spearman"], marker="o", label=name)
    for ax, what in ((ax_j, "Jaccard of damaged sets"), (ax_s, "Spearman of damage")):
        ax.set_xticks(sorted(t["bits"].unique()))
        ax.set_xlabel("bit-width (pruning matched to its perplexity)")
        ax.set_ylabel(what)
        ax.set_ylim(-0.05 if what.startswith("J") else -1.05, 1.05)
        ax.grid(alpha=0.3)
    legend_below(fig, [ax_j])
    ax_s.set_title("gaps: undefined (no feature damaged)", fontsize=8)
    return save(
        fig,
        out,
        "overlap_vs_bits",
        "Quantization vs matched pruning: overlap per bits",
        "Is the damage set specific to quantization, or shared with pruning at equal PPL?",
    )


def _matrix(ax: plt.Axes, cells: pd.DataFrame, value: str, names: list[str], span) -> None:
    """One heat map of `value` over the (job_a, job_b) cells, each annotated."""
    grid = cells.pivot(index="job_a", columns="job_b", values=value).reindex(names, axis=0)
    grid = grid.reindex(names, axis=1).to_numpy(dtype=float)
    cmap = plt.get_cmap("viridis" if span[0] == 0 else "RdBu_r").with_extremes(bad="#f1f3f5")
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=span[0], vmax=span[1])
    for (i, j), v in np.ndenumerate(grid):
        light = not np.isnan(v) and (v < 0.6 if span[0] == 0 else abs(v) > 0.6)
        ax.text(
            j,
            i,
            number(v),
            ha="center",
            va="center",
            fontsize=7,
            color="white" if light else "black",
        )
    ax.set_xticks(range(len(names)), names, rotation=40, ha="right", fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    plt.colorbar(image, ax=ax, shrink=0.8).ax.tick_params(labelsize=7)


def overlap_matrix(ctx: Context, out: Path) -> Figure:
    """Jaccard of damaged sets and Spearman of damage for every pair of jobs measured against
    the same FP reference (model, SAEs, tokens), one pair of matrices per reference."""
    pairs = pairwise_overlap(ctx.col)
    if pairs.empty:
        raise SkipFigure("no two jobs share an FP reference (same model, SAEs and tokens)")
    groups = list(pairs.groupby("reference_key", sort=False))
    size = max(len(g["job_a"].unique()) for _, g in groups)
    longest = max(len(n) for n in pairs["job_a"])
    fig, axes = plt.subplots(
        len(groups),
        2,
        figsize=(
            2 * (1.2 + 0.07 * longest + 0.55 * size),
            len(groups) * (1.2 + 0.07 * longest + 0.5 * size),
        ),
        squeeze=False,
        layout="constrained",
    )
    for (ax_j, ax_s), (_, cells) in zip(axes, groups, strict=True):
        names = list(dict.fromkeys(cells["job_a"]))
        _matrix(ax_j, cells, "jaccard", names, (0, 1))
        _matrix(ax_s, cells, "spearman", names, (-1, 1))
        where = wrapped(f"{cells['model'].iloc[0]} {cells['saes'].iloc[0]}", 36)
        ax_j.set_title(f"{where}\nJaccard of damaged sets", fontsize=8)
        ax_s.set_title(f"{where}\nSpearman of damage 1 − r", fontsize=8)
    fig.suptitle(
        "Damage overlap of every pair of jobs on the same tokens (– undefined)", fontsize=10
    )
    return save(
        fig,
        out,
        "overlap_matrix",
        "Damage overlap between every pair of jobs",
        "Do two compressions (or a compression and its matched noise) damage the same features?",
    )
