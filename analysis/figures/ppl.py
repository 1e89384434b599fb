"""ΔPPL vs fraction of features degraded: does perplexity reveal feature damage?"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from analysis.figures.base import Context, Figure, SkipFigure, legend_below, legend_rows, save
from analysis.figures.survival import COLORS, MARKERS
from analysis.tables.summarize import label, series_groups

# Points closer than this (axes fraction) share one bit-width label instead of overprinting.
NEAR = 0.04


def _linthresh(values: np.ndarray, floor: float) -> float:
    """The symlog linear range: the power of ten at or below the smallest non-zero |value|."""
    nonzero = np.abs(values[np.isfinite(values) & (values != 0)])
    smallest = max(nonzero.min() if nonzero.size else floor, floor)
    return float(10.0 ** np.floor(np.log10(smallest)))


def _label_clusters(ax: plt.Axes, points: list[tuple[float, float, int | None]]) -> None:
    """One '3b, 4b' label per cluster of nearby points, so labels never pile up."""
    ax.autoscale_view()
    to_axes = ax.transScale + ax.transLimits
    placed: list[tuple[np.ndarray, list[int], tuple[float, float]]] = []
    for x, y, bits in points:
        where = to_axes.transform((x, y))
        for anchor, members, _ in placed:
            if np.hypot(*(where - anchor)) < NEAR:
                members.append(bits)
                break
        else:
            placed.append((where, [bits], (x, y)))
    for _, members, xy in placed:
        text = ", ".join(f"{b}b" for b in sorted(set(members) - {None}))
        ax.annotate(text, xy, textcoords="offset points", xytext=(5, 4), fontsize=7)


def dppl_vs_degraded(ctx: Context, out: Path) -> Figure:
    """ΔPPL vs % degraded on symlog axes, one point per job, coloured by configuration."""
    j = ctx.col.jobs
    if j.empty or j["delta_ppl"].isna().all():
        raise SkipFigure("no job has a ΔPPL")
    j = j[j["delta_ppl"].notna()].assign(degraded=lambda d: 100 * (1 - d["frac_survived"]))
    groups = series_groups(j)
    methods = sorted(j["compression"].unique())
    fig, ax = plt.subplots(figsize=(6.4, 4.4 + legend_rows(len(groups))), layout="constrained")
    points = []
    for i, (_, part) in enumerate(groups):
        first = part.iloc[0]
        m = methods.index(first["compression"])
        ax.scatter(
            part["degraded"],
            part["delta_ppl"],
            marker=MARKERS[m % 8],
            color=COLORS(i % 10),
            label=label(first, ctx.n_sweeps),
            s=36,
            zorder=3,
        )
        bits = [None if pd.isna(b) else int(b) for b in part["bits"]]
        points += list(zip(part["degraded"], part["delta_ppl"], bits, strict=True))
    one_feature = 100 / float(np.nanmax(j["n_active"])) if "n_active" in j else 0.1
    x_lin = _linthresh(j["degraded"].to_numpy(), one_feature)
    ax.set_xscale("symlog", linthresh=x_lin, linscale=2)
    ax.set_yscale("symlog", linthresh=_linthresh(j["delta_ppl"].to_numpy(), 1e-4), linscale=2)
    ax.axhline(0, color="black", lw=0.8)
    _label_clusters(ax, points)
    ax.set_xlabel("active features degraded (blurred + destroyed, %; symlog)")
    ax.set_ylabel("ΔPPL (compressed − FP; symlog)")
    ax.set_title("Perplexity change vs feature damage (one point per job)")
    ax.grid(alpha=0.3)
    legend_below(fig, [ax])
    return save(
        fig,
        out,
        "dppl_vs_degraded",
        "ΔPPL vs fraction degraded",
        "Does perplexity reveal feature damage, or can PPL look fine while features drift?",
    )
