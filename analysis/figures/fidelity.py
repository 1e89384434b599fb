"""Steering and ablation fidelity vs survival r and vs ΔPPL: does damage by r mean damage to use?

A feature's steering (ablation) fidelity is the correlation of the effects on next-token
log-probs of steering along (zero-ablating) it in the FP and in the compressed model; the job
measures it on a sample of active features. Older jobs lack the columns: the figures skip.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from analysis.figures.base import (
    CLASS_COLORS,
    Context,
    Figure,
    SkipFigure,
    legend_below,
    legend_rows,
    panels,
    save,
    wrapped,
)
from analysis.tables.summarize import label
from sweep.results.columns import CLASSES, SURVIVED

KINDS = {"steer": "steering", "ablate": "ablation"}


def _sampled(ctx: Context, kind: str) -> pd.DataFrame:
    """Active features with a measured `<kind>_r`, or SkipFigure saying why there are none."""
    f = ctx.col.features
    column = f"{kind}_r"
    if f.empty or column not in f or f[column].isna().all():
        raise SkipFigure(f"no job measured {KINDS[kind]} fidelity ({column} absent: older jobs)")
    return f[f["active"].astype(bool) & f[column].notna()]


def _vs_r(ctx: Context, out: Path, kind: str) -> Figure:
    """One panel per job × SAE: fidelity against r, one colour per survival class."""
    sampled = _sampled(ctx, kind)
    cells = list(sampled.groupby(["sweep", "key", "sae"], sort=False))
    fig, axes = panels(len(cells), width=3.6, height=3.2, below=legend_rows(len(CLASSES), 3))
    for ax, (_, part) in zip(axes, cells, strict=True):
        for cls in CLASSES:
            mine = part[part["class"] == cls]
            ax.scatter(mine["r"], mine[f"{kind}_r"], s=10, color=CLASS_COLORS[cls], label=cls)
        ax.plot([0, 1], [0, 1], color="#adb5bd", lw=0.8, zorder=0)
        ax.set_title(wrapped(label(part.iloc[0], ctx.n_sweeps, with_bits=True), 40), fontsize=8)
        ax.set_xlabel("survival r (FP vs compressed code)")
        ax.set_ylabel(f"{KINDS[kind]} fidelity r")
        ax.grid(alpha=0.3)
    legend_below(fig, axes, ncols=3)
    return save(
        fig,
        out,
        f"{kind}_r_vs_r",
        f"{KINDS[kind].capitalize()} fidelity vs survival r",
        f"Does a feature that survives by r also have the same {KINDS[kind]} effect in the "
        "compressed model? (one point per sampled active feature)",
    )


def job_means(ctx: Context, kind: str) -> pd.DataFrame:
    """Per job and group (survived / damaged): mean `<kind>_r` of the sampled features and
    the job's ΔPPL."""
    sampled = _sampled(ctx, kind)
    sampled = sampled.assign(group=np.where(sampled["class"] == SURVIVED, "survived", "damaged"))
    means = sampled.groupby(["sweep", "key", "group"])[f"{kind}_r"].mean().reset_index()
    jobs = ctx.col.jobs[["sweep", "key", "delta_ppl"]]
    return means.merge(jobs, on=["sweep", "key"], how="left")


def _vs_dppl(ctx: Context, out: Path, kind: str) -> Figure:
    """One point per job and group (surviving / damaged features): mean fidelity vs ΔPPL."""
    if ctx.col.jobs["delta_ppl"].isna().all():
        raise SkipFigure("no job has a ΔPPL")
    means = job_means(ctx, kind)
    fig, ax = plt.subplots(figsize=(6.4, 4.4 + legend_rows(2)), layout="constrained")
    for group, color in (("survived", CLASS_COLORS[SURVIVED]), ("damaged", "#c92a2a")):
        part = means[means["group"] == group]
        ax.scatter(
            part["delta_ppl"],
            part[f"{kind}_r"],
            color=color,
            s=30,
            label=f"{group} features",
            zorder=3,
        )
    finite = means["delta_ppl"].abs()
    small = finite[finite > 0].min() if (finite > 0).any() else 1e-4
    ax.set_xscale("symlog", linthresh=float(10.0 ** np.floor(np.log10(small))), linscale=2)
    ax.set_xlabel("ΔPPL (compressed − FP; symlog)")
    ax.set_ylabel(f"mean {KINDS[kind]} fidelity r")
    ax.set_title(f"Mean {KINDS[kind]} fidelity per job vs perplexity change")
    ax.grid(alpha=0.3)
    legend_below(fig, [ax])
    return save(
        fig,
        out,
        f"{kind}_r_vs_dppl",
        f"{KINDS[kind].capitalize()} fidelity vs ΔPPL",
        f"Does perplexity predict {KINDS[kind]} fidelity? (one point per job and feature group)",
    )


def steer_r_vs_r(ctx: Context, out: Path) -> Figure:
    """Steering fidelity vs survival r, per job × SAE."""
    return _vs_r(ctx, out, "steer")


def ablate_r_vs_r(ctx: Context, out: Path) -> Figure:
    """Ablation fidelity vs survival r, per job × SAE."""
    return _vs_r(ctx, out, "ablate")


def steer_r_vs_dppl(ctx: Context, out: Path) -> Figure:
    """Mean steering fidelity per job vs ΔPPL."""
    return _vs_dppl(ctx, out, "steer")


def ablate_r_vs_dppl(ctx: Context, out: Path) -> Figure:
    """Mean ablation fidelity per job vs ΔPPL."""
    return _vs_dppl(ctx, out, "ablate")
