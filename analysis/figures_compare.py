"""Figures on survival prediction and on quantization vs matched pruning (see analysis.figures)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from analysis.figures import Context, Figure, SkipFigure, panels, save
from analysis.overlap import matched_pairs, overlap_table, paired_damage
from analysis.summarize import label


def _estimable(ctx: Context) -> list[tuple[pd.Series, dict]]:
    """(per-SAE row, prediction dict) of every job/SAE whose survival model was estimable."""
    out = []
    for _, row in ctx.col.per_sae.iterrows():
        pred = (ctx.col.summaries[f"{row['sweep']}/{row['key']}"].get("prediction") or {}).get(
            row["sae"]
        )
        if pred and pred.get("estimable"):
            out.append((row, pred))
    return out


def _no_prediction_reason(ctx: Context) -> str:
    reasons = ctx.col.per_sae.get("prediction_reason", pd.Series(dtype=object)).dropna()
    common = reasons.value_counts().index[0] if len(reasons) else "no prediction in any summary"
    return f"survival prediction not estimable for any job (e.g. {common})"


def prediction_roc(ctx: Context, out: Path) -> Figure:
    """ROC curves of the cross-validated survival model, one per estimable job."""
    est = _estimable(ctx)
    if not est:
        raise SkipFigure(_no_prediction_reason(ctx))
    fig, ax = plt.subplots(figsize=(5.2, 4.8), layout="constrained")
    for row, pred in est:
        roc = pred.get("roc") or {}
        if not roc.get("fpr"):
            continue
        ax.plot(
            roc["fpr"],
            roc["tpr"],
            label=f"{label(row, ctx.n_sweeps)} {row['bits']}b  AUC {pred['auc']:.2f}",
        )
    ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=1)
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.set_title(f"Predicting survival from FP statistics ({est[0][1].get('k', '?')}-fold CV)")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_aspect("equal")
    return save(
        fig,
        out,
        "prediction_roc",
        "Survival prediction: ROC",
        "Can FP statistics alone tell which features will survive compression?",
    )


def marginal_auc_bars(ctx: Context, out: Path) -> Figure:
    """Marginal AUC of each FP predictor, one bar group per estimable job."""
    est = _estimable(ctx)
    if not est:
        raise SkipFigure(_no_prediction_reason(ctx))
    names = sorted({p for _, pred in est for p in (pred.get("marginal") or {})})
    if not names:
        raise SkipFigure("no marginal AUCs in the estimable predictions")
    fig, ax = plt.subplots(
        figsize=(6.4, 0.35 * len(names) * max(1, len(est)) ** 0.5 + 1.6), layout="constrained"
    )
    height = 0.8 / len(est)
    y = np.arange(len(names))
    for i, (row, pred) in enumerate(est):
        marg = pred.get("marginal") or {}
        vals = [marg.get(n, {}).get("auc", np.nan) for n in names]
        ax.barh(
            y + i * height - 0.4 + height / 2,
            vals,
            height=height,
            label=f"{label(row, ctx.n_sweeps)} {row['bits']}b",
        )
    ax.axvline(0.5, color="black", lw=0.8)
    ax.set_yticks(y, names)
    ax.set_xlim(0, 1)
    ax.set_xlabel("marginal ROC AUC for 'survived' (< 0.5: higher value → less survival)")
    ax.set_title("Which FP statistic predicts survival?")
    ax.legend(fontsize=7)
    return save(
        fig,
        out,
        "marginal_auc",
        "Survival prediction: marginal AUC per predictor",
        "Which single FP statistic best separates surviving from damaged features?",
    )


def damage_scatter(ctx: Context, out: Path) -> Figure:
    """Damage (1 − r) under the reference quantization vs matched pruning, one panel per bits."""
    pairs = [(j, r) for j, r in matched_pairs(ctx.col.jobs) if r is not None]
    if not pairs:
        raise SkipFigure("no matched-pruning job with its reference (RTN) job in the same sweep")
    f = ctx.col.features
    fig, axes = panels(len(pairs), width=3.8, height=3.6, ncols=4)
    for ax, (job, ref) in zip(axes, pairs, strict=True):
        mine = f[f["sweep"] == job["sweep"]]
        d = paired_damage(mine[mine["key"] == ref["key"]], mine[mine["key"] == job["key"]])
        ax.scatter(d["damage_a"], d["damage_b"], s=4, alpha=0.4, lw=0)
        hi = np.nanmax([d["damage_a"].max(), d["damage_b"].max(), 1e-3])
        ax.plot([0, hi], [0, hi], color="grey", ls=":", lw=1)
        rho = job["overlap_spearman"]
        if pd.isna(rho):
            from sweep.overlap import spearman

            rho = spearman(d["damage_a"].to_numpy(), d["damage_b"].to_numpy())[0]
        ax.set_title(
            f"{job['model']} {job['bits']} bits, sparsity {job['sparsity']:.2f}\n"
            f"Spearman ρ = {'undefined' if pd.isna(rho) else f'{rho:.2f}'} (n={len(d)})",
            fontsize=9,
        )
        ax.set_xlabel(f"damage under {ref['compression']}")
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
    t = overlap_table(ctx.col.jobs, ctx.col.features)
    if t.empty:
        raise SkipFigure("no matched-pruning jobs")
    if t[["jaccard", "spearman"]].isna().all().all():
        raise SkipFigure("Jaccard and Spearman undefined for every matched job (no damage)")
    fig, (ax_j, ax_s) = plt.subplots(1, 2, figsize=(9.6, 3.8), layout="constrained")
    for (sweep, model, saes), part in t.groupby(["sweep", "model", "saes"]):
        part = part.sort_values("bits")
        name = f"{model} {saes}" if ctx.n_sweeps == 1 else f"{sweep} {model} {saes}"
        ax_j.plot(part["bits"], part["jaccard"], marker="o", label=name)
        ax_s.plot(part["bits"], part["spearman"], marker="o", label=name)
    for ax, what in ((ax_j, "Jaccard of damaged sets"), (ax_s, "Spearman of damage")):
        ax.set_xticks(sorted(t["bits"].unique()))
        ax.set_xlabel("bit-width (pruning matched to its perplexity)")
        ax.set_ylabel(what)
        ax.set_ylim(-0.05 if what.startswith("J") else -1.05, 1.05)
        ax.grid(alpha=0.3)
    ax_j.legend(fontsize=7)
    ax_s.set_title("gaps: undefined (no feature damaged)", fontsize=8)
    return save(
        fig,
        out,
        "overlap_vs_bits",
        "Quantization vs matched pruning: overlap per bits",
        "Is the damage set specific to quantization, or shared with pruning at equal PPL?",
    )
