"""The figure machinery: 300-dpi PNG + SVG, panels, legends, and the registry of every figure.

Each figure answers one question; absent data skips it with a note. One series (line, panel,
bar) is always one configuration: analysis.summarize.series_groups splits by every varying key.
"""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from analysis.collect import Collection
from analysis.summarize import survival_summary
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


def panels(n: int, width: float = 4.2, height: float = 3.4, ncols: int = 3, below: float = 0.0):
    """A grid of n axes (extra axes hidden) with constrained layout; `below` inches for a legend."""
    cols = min(n, ncols)
    rows = -(-n // cols)
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(max(width * cols, 6.4 if below else 0), height * rows + below),
        squeeze=False,
        layout="constrained",
    )
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def legend_below(fig: plt.Figure, axes: list[plt.Axes], ncols: int = 2) -> None:
    """One legend for the figure, outside the axes below them (it never covers a point)."""
    seen: dict[str, object] = {}
    for ax in axes:
        for handle, text in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(text, handle)
    if seen:
        cols = min(ncols, len(seen))
        fig.legend(
            list(seen.values()), list(seen), loc="outside lower center", ncols=cols, fontsize=8
        )


def legend_rows(n: int, ncols: int = 2) -> float:
    """Inches of figure height a legend of n entries in ncols columns needs below the axes."""
    return 0.3 + 0.2 * -(-n // max(1, min(ncols, n)))


def wrapped(text: str, width: int = 48) -> str:
    """A panel title broken into lines of at most `width` characters."""
    return "\n".join(textwrap.wrap(text, width)) or " "


def bits_axis(ax: plt.Axes, bits: pd.Series) -> None:
    """Integer bit-width ticks, label and grid."""
    ax.set_xticks(sorted(int(b) for b in bits.unique()))
    ax.set_xlabel("bit-width")
    ax.grid(alpha=0.3)


def registry() -> list[Callable[[Context, Path], Figure]]:
    """Every figure function, in report order."""
    from analysis.figures_compare import damage_scatter, overlap_vs_bits
    from analysis.figures_fidelity import (
        ablate_r_vs_dppl,
        ablate_r_vs_r,
        steer_r_vs_dppl,
        steer_r_vs_r,
    )
    from analysis.figures_ppl import dppl_vs_degraded
    from analysis.figures_predict import marginal_auc_bars, prediction_roc
    from analysis.figures_survival import (
        class_stacks,
        r_ecdf,
        survival_per_sae,
        survival_vs_bits,
    )

    return [
        survival_vs_bits,
        survival_per_sae,
        class_stacks,
        r_ecdf,
        dppl_vs_degraded,
        prediction_roc,
        marginal_auc_bars,
        damage_scatter,
        overlap_vs_bits,
        steer_r_vs_r,
        steer_r_vs_dppl,
        ablate_r_vs_r,
        ablate_r_vs_dppl,
    ]


def make_figures(
    col: Collection, out: Path, n_boot: int = 2000, seed: int = 0
) -> tuple[list[Figure], list[tuple[str, str]]]:
    """Draw every figure into out/; returns the figures written and (name, reason) skipped."""
    any_summary = next(iter(col.summaries.values()), {})
    surv = (any_summary.get("config") or {}).get("survival") or {}
    ctx = Context(
        col=col,
        survival=survival_summary(col, n_boot, seed),
        n_sweeps=col.dims.sweeps,
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
