"""The paper's figures, one question each, as 300-dpi PNG + SVG; absent data skips with a note."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from analysis.collect import Collection
from analysis.summarize import label, survival_summary
from sweep.constants import BLURRED, DESTROYED, SURVIVED

log = logging.getLogger("qfeat.analysis")
DPI = 300
CLASS_COLORS = {SURVIVED: "#2b8a3e", BLURRED: "#f59f00", DESTROYED: "#c92a2a"}
STYLES = ["-", "--", ":", "-."]


class SkipFigure(Exception):
    """Raised by a figure function when the data it needs is absent; the message says why."""


@dataclass
class Figure:
    """A written figure: its name, the question it answers, files and pixel size."""

    name: str
    title: str
    question: str
    png: Path
    svg: Path
    size_px: tuple[int, int]


@dataclass
class Context:
    """What every figure function gets: the collection, the survival summary and settings."""

    col: Collection
    survival: pd.DataFrame
    n_sweeps: int
    thresholds: tuple[float, float]


def save(fig: plt.Figure, out: Path, name: str, title: str, question: str) -> Figure:
    """Write PNG (300 dpi) and SVG at the figure's exact size; close it."""
    out.mkdir(parents=True, exist_ok=True)
    png, svg = out / f"{name}.png", out / f"{name}.svg"
    fig.savefig(png, dpi=DPI)
    fig.savefig(svg)
    w, h = fig.get_size_inches()
    plt.close(fig)
    return Figure(name, title, question, png, svg, (round(w * DPI), round(h * DPI)))


def panels(n: int, width: float = 4.2, height: float = 3.4, ncols: int = 3):
    """A grid of n axes (extra axes hidden) with constrained layout."""
    cols = min(n, ncols)
    rows = -(-n // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(width * cols, height * rows), squeeze=False, layout="constrained"
    )
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _bits_axis(ax: plt.Axes, bits: pd.Series) -> None:
    ax.set_xticks(sorted(int(b) for b in bits.unique()))
    ax.set_xlabel("bit-width")
    ax.grid(alpha=0.3)


def survival_vs_bits(ctx: Context, out: Path) -> Figure:
    """Survival fraction vs bit-width, one line per model/layer/method, bootstrap 95% CI."""
    s = ctx.survival
    if s.empty:
        raise SkipFigure("no active features in any job")
    fig, ax = plt.subplots(figsize=(6.4, 4.2), layout="constrained")
    methods = sorted(s["compression"].unique())
    where = list(dict.fromkeys(zip(s["sweep"], s["model"], s["sae"], strict=True)))
    colors = plt.get_cmap("tab10")
    for (sweep, model, sae), part in s.groupby(["sweep", "model", "sae"], sort=False):
        color = colors(where.index((sweep, model, sae)) % 10)
        for method, line in part.groupby("compression"):
            line = line.sort_values("bits")
            i = methods.index(method)
            ax.plot(
                line["bits"],
                100 * line["frac_survived"],
                STYLES[i % len(STYLES)],
                marker="os^Dv"[i % 5],
                color=color,
                label=label(line.iloc[0], ctx.n_sweeps),
            )
            ax.fill_between(
                line["bits"],
                100 * line["survived_ci_low"],
                100 * line["survived_ci_high"],
                color=color,
                alpha=0.15,
                lw=0,
            )
    _bits_axis(ax, s["bits"])
    ax.set_ylabel("active features survived (%)")
    low = float(np.nanmin(s["survived_ci_low"])) * 100
    ax.set_ylim(max(0.0, 5 * np.floor((low - 1) / 5)), 100.5)
    ax.set_title(f"Feature survival (r ≥ {ctx.thresholds[0]:g}); band: bootstrap 95% CI")
    ax.legend(fontsize=8)
    return save(
        fig,
        out,
        "survival_vs_bits",
        "Survival vs bit-width",
        "How many active features survive at each bit-width, per model, layer, method?",
    )


def class_stacks(ctx: Context, out: Path) -> Figure:
    """Stacked survived/blurred/destroyed fractions per bit-width, one panel per line."""
    s = ctx.survival
    if s.empty:
        raise SkipFigure("no active features in any job")
    groups = list(s.groupby(["sweep", "model", "sae", "compression"], sort=True))
    fig, axes = panels(len(groups))
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
        ax.set_title(label(part.iloc[0], ctx.n_sweeps), fontsize=10)
        ax.set_ylim(0, 100)
    axes[0].legend(fontsize=8, loc="lower right")
    return save(
        fig,
        out,
        "class_stacks",
        "Survival classes per bit-width",
        "At each bit-width, what share of features survive, blur or are destroyed?",
    )


def r_ecdf(ctx: Context, out: Path) -> Figure:
    """ECDF of r over active features, one curve per bit-width, one panel per line."""
    f = ctx.col.features
    active = f[f["active"].astype(bool)] if len(f) else f
    if active.empty:
        raise SkipFigure("no active features in any job")
    groups = list(active.groupby(["sweep", "model", "sae", "compression"], sort=True))
    fig, axes = panels(len(groups))
    cmap = plt.get_cmap("viridis")
    all_bits = sorted(active["bits"].unique())
    for ax, (_, part) in zip(axes, groups, strict=True):
        for bits, sub in part.groupby("bits"):
            r = np.sort(sub["r"].dropna().to_numpy())
            y = np.arange(1, len(r) + 1) / len(r)
            color = cmap(all_bits.index(bits) / max(len(all_bits) - 1, 1))
            ax.step(r, y, where="post", color=color, label=f"{bits} bits")
        for t in ctx.thresholds:
            ax.axvline(t, color="grey", ls=":", lw=1)
        ax.set_xlabel("survival score r")
        ax.set_ylabel("fraction of active features ≤ r")
        ax.set_title(label(part.iloc[0], ctx.n_sweeps), fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="upper left")
    return save(
        fig,
        out,
        "r_ecdf",
        "Distribution of r per bit-width",
        "How is the survival score spread across features at each bit-width?",
    )


def dppl_vs_degraded(ctx: Context, out: Path) -> Figure:
    """ΔPPL vs fraction degraded, one labelled point per job, with the ΔPPL = 0 line."""
    j = ctx.col.jobs
    if j.empty or j["delta_ppl"].isna().all():
        raise SkipFigure("no job has a ΔPPL")
    fig, ax = plt.subplots(figsize=(6.4, 4.6), layout="constrained")
    markers = dict(zip(sorted(j["compression"].unique()), "osD^v<>", strict=False))
    colors = plt.get_cmap("tab10")
    models = sorted(j["model"].unique())
    for method, part in j.groupby("compression"):
        for _, row in part.iterrows():
            ax.scatter(
                100 * (1 - row["frac_survived"]),
                row["delta_ppl"],
                marker=markers[method],
                color=colors(models.index(row["model"]) % 10),
                label=f"{row['model']} {method}",
                s=36,
            )
            ax.annotate(
                f"{row['bits']}b",
                (100 * (1 - row["frac_survived"]), row["delta_ppl"]),
                textcoords="offset points",
                xytext=(4, 3),
                fontsize=7,
            )
    ax.axhline(0, color="black", lw=0.8)
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    ax.legend(unique.values(), unique.keys(), fontsize=8)
    ax.set_xlabel("active features degraded (blurred + destroyed, %)")
    ax.set_ylabel("ΔPPL (compressed − FP)")
    ax.set_title("Perplexity change vs feature damage (one point per job)")
    ax.grid(alpha=0.3)
    return save(
        fig,
        out,
        "dppl_vs_degraded",
        "ΔPPL vs fraction degraded",
        "Does perplexity reveal feature damage, or can PPL look fine while features drift?",
    )


def registry() -> list[Callable[[Context, Path], Figure]]:
    """Every figure function, in report order."""
    from analysis.figures_compare import (
        damage_scatter,
        marginal_auc_bars,
        overlap_vs_bits,
        prediction_roc,
    )

    return [
        survival_vs_bits,
        class_stacks,
        r_ecdf,
        dppl_vs_degraded,
        prediction_roc,
        marginal_auc_bars,
        damage_scatter,
        overlap_vs_bits,
    ]


def make_figures(
    col: Collection, out: Path, n_boot: int = 2000, seed: int = 0
) -> tuple[list[Figure], list[tuple[str, str]]]:
    """Draw every figure into out/; returns the figures written and (name, reason) skipped."""
    any_summary = next(iter(col.summaries.values()), {})
    surv = (any_summary.get("config") or {}).get("survival") or {}
    ctx = Context(
        col=col,
        survival=survival_summary(col.features, n_boot, seed)
        if len(col.features)
        else pd.DataFrame(),
        n_sweeps=len(col.jobs["sweep"].unique()) if len(col.jobs) else 0,
        thresholds=(float(surv.get("survived", 0.9)), float(surv.get("blurred", 0.5))),
    )
    written, skipped = [], []
    for fn in registry():
        try:
            written.append(fn(ctx, out))
            log.info("figure %s written", fn.__name__)
        except SkipFigure as why:
            skipped.append((fn.__name__, str(why)))
            log.info("figure %s skipped: %s", fn.__name__, why)
    return written, skipped
