"""Figures on survival: vs bits, per SAE, class stacks, ECDF of damage, ΔPPL vs damage."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from analysis.figures.base import (
    CLASS_COLORS,
    STYLES,
    Context,
    Figure,
    SkipFigure,
    bits_axis,
    legend_below,
    legend_rows,
    panels,
    save,
    wrapped,
)
from analysis.tables.summarize import CELL, SAE_ID, label, sae_label, series_groups
from sweep.results.columns import BLURRED, DESTROYED, SURVIVED

MARKERS = "os^Dv<>p"
COLORS = plt.get_cmap("tab10")


def _dodge(i: int, n: int) -> float:
    """A small x offset for series i of n, so CI bars at one bit-width do not hide each other."""
    return 0.06 * (i - (n - 1) / 2) if n > 1 else 0.0


def _survival_lines(
    ax: plt.Axes, line: pd.DataFrame, color, marker: str, style: str, text: str, dx: float = 0.0
) -> None:
    """Survival % vs bits with bootstrap 95% CI error bars; markers at 100% are not clipped."""
    line = line.sort_values("bits")
    y = 100 * line["frac_survived"].to_numpy()
    err = [y - 100 * line["survived_ci_low"].to_numpy(), 100 * line["survived_ci_high"] - y]
    ax.errorbar(
        line["bits"] + dx,
        y,
        yerr=err,
        fmt=style,
        marker=marker,
        color=color,
        label=text,
        capsize=3,
        ms=5,
        clip_on=False,
        zorder=3,
    )


def _survival_axis(ax: plt.Axes, s: pd.DataFrame) -> None:
    bits_axis(ax, s["bits"])
    ax.set_ylabel("active features survived (%)")
    low = 5 * np.floor((float(np.nanmin(s["survived_ci_low"])) * 100 - 1) / 5)
    low = max(0.0, low)
    ax.set_ylim(low, 100 + 0.02 * (100 - low))  # headroom: markers at 100% stay whole
    ax.margins(x=0.05)


def _survival(ctx: Context) -> pd.DataFrame:
    """The per-cell survival summary of the jobs with a bit-width (the x-axis), or skip the
    figure when none has an active feature."""
    if ctx.survival.empty:
        raise SkipFigure("no active features in any job")
    s = ctx.survival[ctx.survival["bits"].notna()]
    if s.empty:
        raise SkipFigure("no job has a bit-width (pruning jobs are in the tables)")
    return s.astype({"bits": int})


def survival_vs_bits(ctx: Context, out: Path) -> Figure:
    """Survival vs bit-width: one line per configuration (varying keys named), 95% CI bars."""
    s = _survival(ctx)
    groups = series_groups(s)
    n = len(groups)
    methods = sorted(s["compression"].unique())
    fig, ax = plt.subplots(figsize=(6.4, 4.0 + legend_rows(n)), layout="constrained")
    for i, (_, line) in enumerate(groups):
        m = methods.index(line["compression"].iloc[0])
        text = label(line.iloc[0], ctx.n_sweeps)
        style = STYLES[m % 4]
        _survival_lines(ax, line, COLORS(i % 10), MARKERS[m % 8], style, text, _dodge(i, n))
    _survival_axis(ax, s)
    ax.set_title(f"Feature survival (r ≥ {ctx.thresholds[0]:g}); bars: bootstrap 95% CI")
    legend_below(fig, [ax])
    return save(
        fig,
        out,
        "survival_vs_bits",
        "Survival vs bit-width",
        "How many active features survive at each bit-width, per configuration?",
    )


def survival_per_sae(ctx: Context, out: Path) -> Figure:
    """Survival vs bits, one line per SAE, one panel per other setting: which SAE is fragile?"""
    s = _survival(ctx)
    saes = [k for k, _ in series_groups(s, SAE_ID)]
    if len(saes) < 2:
        one = sae_label(s.iloc[0], ctx.n_sweeps)
        raise SkipFigure(f"one SAE in the sweep ({one}); sweep sae=a,b,… to compare SAEs")
    groups = series_groups(s, ["compression", "setting"])
    fig, axes = panels(len(groups), 4.6, 3.6, below=legend_rows(len(saes)))
    for ax, ((method, setting), part) in zip(axes, groups, strict=True):
        for key, line in series_groups(part, SAE_ID):
            i = saes.index(key)
            text = sae_label(line.iloc[0], ctx.n_sweeps)
            dx = _dodge(i, len(saes))
            _survival_lines(ax, line, COLORS(i % 10), MARKERS[i % 8], "-", text, dx)
        _survival_axis(ax, s)
        ax.set_title(wrapped(f"{method} {setting}".strip()), fontsize=9)
    legend_below(fig, axes)
    fig.suptitle("Survival vs bit-width per SAE (bars: bootstrap 95% CI)", fontsize=11)
    return save(
        fig,
        out,
        "survival_per_sae",
        "Survival vs bit-width per SAE",
        "Which SAE (architecture, width, layer) loses its features first under compression?",
    )


def class_stacks(ctx: Context, out: Path) -> Figure:
    """Stacked survived/blurred/destroyed fractions per bit-width, one panel per configuration."""
    s = _survival(ctx)
    groups = series_groups(s)
    fig, axes = panels(len(groups), below=legend_rows(3, 3))
    for ax, (_, part) in zip(axes, groups, strict=True):
        part = part.sort_values("bits")
        x = np.arange(len(part))
        bottom = np.zeros(len(part))
        for cls in (SURVIVED, BLURRED, DESTROYED):
            vals = 100 * part[f"frac_{cls}"].to_numpy()
            ax.bar(x, vals, bottom=bottom, color=CLASS_COLORS[cls], label=cls, width=0.7)
            bottom += vals
        ax.set_xticks(x, [str(b) for b in part["bits"]])
        ax.set_xlabel("bit-width")
        ax.set_ylabel("% of active features")
        ax.set_title(wrapped(label(part.iloc[0], ctx.n_sweeps)), fontsize=9)
        ax.set_ylim(0, 100)
        ax.set_xlim(-0.6, max(len(part), 3) - 0.4)  # a lone bar keeps its width
    legend_below(fig, axes[:1], ncols=3)
    return save(
        fig,
        out,
        "class_stacks",
        "Survival classes per bit-width",
        "At each bit-width, what share of features survive, blur or are destroyed?",
    )


def r_ecdf(ctx: Context, out: Path) -> Figure:
    """ECDF of damage 1 − r on a log axis (curves near r = 1 separate), one panel per config."""
    f = ctx.col.features
    s = _survival(ctx)
    active = f[f["active"].astype(bool) & f["r"].notna()]
    cells = dict(iter(active.groupby(CELL, sort=False)))
    damage = (1 - active["r"]).to_numpy()
    positive = damage[damage > 0]
    floor = 10.0 ** np.floor(np.log10(positive.min())) if positive.size else 1e-6
    exact = bool((damage <= 0).any())
    groups = series_groups(s)
    all_bits = sorted(s["bits"].unique())
    cmap = plt.get_cmap("viridis")
    fig, axes = panels(len(groups), below=legend_rows(len(all_bits), 4))
    for ax, (_, part) in zip(axes, groups, strict=True):
        for _, cell in part.sort_values("bits").iterrows():
            d = np.sort(np.maximum(1 - cells[tuple(cell[CELL])]["r"].to_numpy(), floor))
            y = np.arange(1, len(d) + 1) / len(d)
            color = cmap(all_bits.index(cell["bits"]) / max(len(all_bits) - 1, 1))
            ax.step(d, y, where="post", color=color, label=f"{int(cell['bits'])} bits")
        for t in ctx.thresholds:
            ax.axvline(1 - t, color="grey", ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_xlim(floor, 2)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("damage 1 − r (log scale)" + (f"; r = 1 drawn at {floor:g}" if exact else ""))
        ax.set_ylabel("fraction of active features ≤ x")
        ax.set_title(wrapped(label(part.iloc[0], ctx.n_sweeps)), fontsize=9)
        ax.grid(alpha=0.3)
    legend_below(fig, axes, ncols=4)
    survived, blurred = ctx.thresholds
    fig.suptitle(
        f"ECDF of damage 1 − r; dotted lines at r = {survived:g} and r = {blurred:g} "
        "(left of the first: survived)",
        fontsize=10,
    )
    return save(
        fig,
        out,
        "r_ecdf",
        "Distribution of damage (1 − r) per bit-width",
        "How is the survival score spread across features at each bit-width?",
    )
