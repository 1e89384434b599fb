"""The figure machinery: 300-dpi PNG + SVG, panels, legends, the context every figure gets.

Each figure answers one question; absent data skips it with a note. One series (line, panel,
bar) is always one configuration: analysis.summarize.series_groups splits by every varying key.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from analysis.load.collect import Collection
from sweep.results.columns import BLURRED, DESTROYED, SURVIVED

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
    # Solve the layout once and keep it for both files: a layout engine left on the figure
    # solves it again, twice, at every savefig.
    fig.draw_without_rendering()
    fig.set_layout_engine(None)
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
    ax.set_xticks(sorted(int(b) for b in bits.dropna().unique()))
    ax.set_xlabel("bit-width")
    ax.grid(alpha=0.3)
