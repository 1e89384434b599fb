"""Figures on how sure the numbers are: survival over nested prefixes of the token set (has it
settled?), and how a feature's r interval depends on how many tokens it fires on (what
`survival.min_active_tokens` buys)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

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
from analysis.figures.survival import COLORS
from analysis.tables.summarize import label
from analysis.tables.uncertainty import settles_from
from sweep.derive.classes import Rules, uncertain

# FP firing-token bins of the interval figure: [edge_i, edge_i+1).
TOKEN_BINS = (1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000, np.inf)


def _with_convergence(ctx: Context) -> list[tuple[pd.Series, object]]:
    """(job row, its Uncertainty record) of every job that recorded prefixes."""
    out = []
    for _, job in ctx.col.jobs.iterrows():
        u = ctx.col.summaries[f"{job['sweep']}/{job['key']}"].uncertainty
        if u is not None and len(u.convergence) >= 2:
            out.append((job, u))
    return out


def convergence(ctx: Context, out: Path) -> Figure:
    """Survival and mean r on nested prefixes of each job's token set, the full set's token
    interval as a band: has the estimate settled by the number of tokens measured?"""
    jobs = _with_convergence(ctx)
    if not jobs:
        raise SkipFigure("no job recorded survival on prefixes of its tokens (older jobs)")
    fig, axes = panels(len(jobs), 4.6, 3.4, below=legend_rows(4, 4))
    handles: tuple[list, list] = ([], [])
    for ax, (job, u) in zip(axes, jobs, strict=True):
        pts = pd.DataFrame([vars(p) for p in u.convergence])
        x, y = pts["n_tokens"], 100 * pts["frac_survived"]
        ax.plot(x, y, marker="o", ms=3, color="C0", label="% survived (prefix)")
        full = y.iloc[-1]
        if u.job is not None:
            half = 50 * (u.job.frac_survived_hi - u.job.frac_survived_lo)
            ax.axhspan(full - half, full + half, color="C0", alpha=0.15, lw=0, label="± half-width")
            start = settles_from(u)
            ax.axvline(start, color="C0", ls=":", lw=1, label="within the band from here on")
        twin = ax.twinx()
        twin.plot(x, pts["mean_r"], color="grey", ls="--", lw=1, label="mean r (right axis)")
        twin.set_ylabel("mean r of active features", fontsize=8, color="grey")
        twin.tick_params(labelsize=7, colors="grey")
        ax.set_xscale("log")
        ax.set_xlabel("measured tokens (nested subsets of whole blocks)")
        ax.set_ylabel("% of active features survived")
        ax.ticklabel_format(axis="y", useOffset=False)  # 100.00, not +1e2 and 0.00
        verdict = {True: "settled", False: "NOT settled", None: "not checked"}[u.settled]
        ax.set_title(wrapped(f"{label(job, ctx.n_sweeps, with_bits=True)}: {verdict}"), fontsize=9)
        ax.grid(alpha=0.3)
        handles = max(handles, _handles(ax, twin), key=lambda h: len(h[0]))
    fig.legend(*handles, loc="outside lower center", ncols=4, fontsize=8)
    fig.suptitle(
        "Survival on nested prefixes of the token set; band: the full set's estimate ± half "
        "its token-bootstrap interval",
        fontsize=10,
    )
    return save(
        fig,
        out,
        "convergence",
        "Survival vs number of measured tokens",
        "Has each job's survival estimate settled with the number of tokens it measured?",
    )


def _handles(ax: plt.Axes, twin: plt.Axes) -> tuple[list, list]:
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = twin.get_legend_handles_labels()
    return h1 + h2, l1 + l2


def interval_by_tokens(frame: pd.DataFrame, rules: Rules) -> pd.DataFrame:
    """Per bin of FP firing tokens, over features with an interval (active or not): how many,
    the share whose interval (widened to hold r) straddles a class threshold, and the median
    interval width."""
    f = frame[frame["r_lo"].notna() & (frame["fp_active_count"] > 0)]
    everyone = np.ones(len(f), dtype=bool)
    straddles = uncertain(
        f["r"].to_numpy(), f["r_lo"].to_numpy(), f["r_hi"].to_numpy(), everyone, rules
    )
    bins = pd.cut(f["fp_active_count"], TOKEN_BINS, right=False)
    g = pd.DataFrame({"bin": bins, "straddles": straddles, "width": f["r_hi"] - f["r_lo"]})
    t = g.groupby("bin", observed=True).agg(
        n=("straddles", "size"), share=("straddles", "mean"), width=("width", "median")
    )
    t["low"] = [b.left for b in t.index]
    t["high"] = [b.right for b in t.index]
    return t.reset_index(drop=True)


def _rules(ctx: Context, job: pd.Series) -> Rules:
    survival = ctx.col.summaries[f"{job['sweep']}/{job['key']}"].config.get("survival") or {}
    return Rules(int(survival.get("min_active_tokens", 10)), *ctx.thresholds)


def uncertainty_by_tokens(ctx: Context, out: Path) -> Figure:
    """Share of features whose r interval straddles a class threshold, and the median interval
    width, by how many tokens the feature fires on in FP: where does r become trustworthy?"""
    f = ctx.col.features
    jobs = [
        (job, part)
        for _, job in ctx.col.jobs.iterrows()
        if (part := f[(f["sweep"] == job["sweep"]) & (f["key"] == job["key"])])["r_lo"]
        .notna()
        .any()
        and (part["class"].isin(["blurred", "destroyed"])).any()
    ]
    if not jobs:
        raise SkipFigure("no job with token-bootstrap intervals and a damaged feature")
    fig, (ax_s, ax_w, ax_n) = plt.subplots(
        1, 3, figsize=(13, 3.8 + legend_rows(len(jobs), 3)), layout="constrained"
    )
    minimum = set()
    for i, (job, part) in enumerate(jobs):
        rules = _rules(ctx, job)
        minimum.add(rules.min_active)
        t = interval_by_tokens(part, rules)
        top = np.where(np.isinf(t["high"]), 2 * t["low"], t["high"] - 1)
        x = np.sqrt(t["low"] * top)  # the bin's geometric middle
        name = label(job, ctx.n_sweeps, with_bits=True)
        for ax, y in ((ax_s, 100 * t["share"]), (ax_w, t["width"]), (ax_n, t["n"])):
            ax.plot(x, y, marker="o", ms=4, color=COLORS(i % 10), label=name)
    for ax, what in (
        (ax_s, "% whose interval straddles 0.9 or 0.5"),
        (ax_w, "median width r_hi − r_lo"),
        (ax_n, "features (with an interval)"),
    ):
        ax.set_xscale("log")
        ax.set_xlabel("tokens the feature fires on in FP (bins)")
        ax.set_ylabel(what)
        ax.grid(alpha=0.3)
        for m in minimum:
            ax.axvline(m, color="grey", ls=":", lw=1)
    ax_n.set_yscale("log")
    fig.suptitle(
        "How sure r is by the number of firing tokens (token bootstrap); dotted: "
        "survival.min_active_tokens, features left of it are inactive",
        fontsize=10,
    )
    legend_below(fig, [ax_s], ncols=3)
    return save(
        fig,
        out,
        "uncertainty_by_tokens",
        "How sure r is, by the number of tokens a feature fires on",
        "How many firing tokens does a feature need before its class is not a coin toss?",
    )
