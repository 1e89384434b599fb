"""Where the damage comes from: % damaged and mean damage per compressed part and layer."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.image import AxesImage

from analysis.figures.base import Context, Figure, SkipFigure, save, wrapped
from analysis.formatting import number, percent
from analysis.tables.attribution import PART, WHOLE, attribution
from analysis.tables.summarize import where

# Each row of panels: (column, title, value as text); a row's panels share one colour scale,
# 0 to the largest value in the figure, so bit-widths and methods compare at a glance.
METRICS = (
    ("pct_damaged", "% damaged (not survived)", percent),
    ("mean_damage", "mean 1 − r", number),
)


def _title(rows: pd.DataFrame, n_sweeps: int) -> str:
    r = rows.iloc[0]
    name = " ".join(str(r[c]) for c in ("model", "compression", "setting") if r[c])
    return wrapped(f"{r['sweep'] + ' ' if n_sweeps > 1 else ''}{name} {int(r['bits'])}b", 34)


def _heatmap(ax: plt.Axes, rows: pd.DataFrame, value: str, text, vmax: float) -> AxesImage:
    """Parts (rows, whole model last) × SAEs (columns, by layer), each cell annotated."""
    parts = list(dict.fromkeys(rows["part"]))
    saes = rows.drop_duplicates("sae").sort_values(["layer", "sae"])
    grid = rows.pivot(index="part", columns="sae", values=value).reindex(parts)
    grid = grid.reindex(columns=list(saes["sae"])).to_numpy(float)
    cmap = plt.get_cmap("magma_r").with_extremes(bad="#f1f3f5")
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=0, vmax=vmax, aspect="auto")
    for (i, j), v in np.ndenumerate(grid):
        dark = not np.isnan(v) and v > 0.55 * vmax
        color = "white" if dark else "black"
        ax.text(j, i, text(v), ha="center", va="center", fontsize=6.5, color=color)
    if len(parts) > 1 and parts[-1].startswith("whole"):
        ax.axhline(len(parts) - 1.5, color="white", lw=2)
    ax.set_xticks(range(len(saes)), [where(r) for _, r in saes.iterrows()], fontsize=8)
    ax.set_yticks(range(len(parts)), parts, fontsize=7)
    ax.set_xlabel("SAE layer", fontsize=8)
    return image


def attribution_heatmap(ctx: Context, out: Path) -> Figure:
    """Per single-part job (and the whole model) × measured layer: % of active features
    damaged and their mean damage, one panel per method × bits."""
    t = attribution(ctx.col)
    t = t[t["scope"].isin((PART, WHOLE))]
    groups = [g for _, g in t.groupby("group", sort=True) if g["scope"].eq(PART).any()]
    if not groups:
        raise SkipFigure("no single-part compression job (one module kind of one block)")
    n_parts = max(g["part"].nunique() for g in groups)
    n_saes = max(g["sae"].nunique() for g in groups)
    fig, axes = plt.subplots(
        len(METRICS),
        len(groups),
        figsize=(max(6.4, len(groups) * (2.6 + 0.55 * n_saes)), 2 * (1.3 + 0.24 * n_parts)),
        squeeze=False,
        layout="constrained",
    )
    for row, (value, what, text) in zip(axes, METRICS, strict=True):
        vmax = max(float(pd.concat(groups)[value].max()), 1e-6)
        for ax, g in zip(row, groups, strict=True):
            image = _heatmap(ax, g, value, text, vmax)
            ax.set_title(f"{_title(g, ctx.n_sweeps)}\n{what}", fontsize=8)
        fig.colorbar(image, ax=list(row), shrink=0.8).ax.tick_params(labelsize=7)
    return save(
        fig,
        out,
        "attribution_heatmap",
        "Where the damage comes from: each part compressed alone",
        "Which part of the model (block × module kind), compressed alone with everything else "
        "FP, damages the features of which layer, and how does that compare with the whole "
        "model compressed (last row)?",
    )
