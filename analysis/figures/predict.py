"""Figures on survival prediction from FP statistics: ROC per configuration, marginal AUCs."""

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
from analysis.formatting import number
from analysis.tables.summarize import CELL, label, series_groups
from sweep.results.summary import Prediction


def _estimable(ctx: Context, need_bits: bool) -> tuple[pd.DataFrame, dict[tuple, Prediction]]:
    """Per-SAE rows (of jobs with a bit-width, if `need_bits`) whose survival model was
    estimable, and their predictions by cell."""
    rows, preds = [], {}
    for _, row in ctx.col.per_sae.iterrows():
        summary = ctx.col.summaries[f"{row['sweep']}/{row['key']}"]
        pred = summary.prediction.get(row["sae"])
        if pred is not None and pred.estimable and not (need_bits and pd.isna(row["bits"])):
            rows.append(row)
            preds[tuple(row[CELL])] = pred
    return pd.DataFrame(rows), preds


def _no_prediction_reason(ctx: Context) -> str:
    reasons = ctx.col.per_sae.get("prediction_reason", pd.Series(dtype=object)).dropna()
    common = reasons.value_counts().index[0] if len(reasons) else "no prediction in any summary"
    return f"survival prediction not estimable for any job (e.g. {common})"


def prediction_roc(ctx: Context, out: Path) -> Figure:
    """ROC of the cross-validated survival model, one panel per configuration, one curve per
    bit-width, each saying how many surviving and damaged features its AUC rests on."""
    rows, preds = _estimable(ctx, need_bits=True)
    if rows.empty:
        raise SkipFigure(_no_prediction_reason(ctx))
    groups = series_groups(rows)
    all_bits = sorted(rows["bits"].unique())
    cmap = plt.get_cmap("viridis")
    fig, axes = panels(len(groups), 4.4, 4.6)
    for ax, (_, part) in zip(axes, groups, strict=True):
        for _, row in part.sort_values("bits").iterrows():
            pred = preds[tuple(row[CELL])]
            if pred.roc is None or not pred.roc.fpr:
                continue
            n, n_pos = pred.n, pred.n_positive
            ax.plot(
                pred.roc.fpr,
                pred.roc.tpr,
                color=cmap(all_bits.index(row["bits"]) / max(len(all_bits) - 1, 1)),
                label=f"{int(row['bits'])} bits: AUC {number(pred.auc)}\n"
                f"  on {n_pos} surviving / {n - n_pos} damaged",
            )
        ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=1)
        ax.set_xlabel("false-positive rate")
        ax.set_ylabel("true-positive rate")
        ax.set_title(wrapped(label(part.iloc[0], ctx.n_sweeps), 44), fontsize=9)
        ax.legend(fontsize=7, loc="lower right")
        ax.set_aspect("equal")
    k = next(iter(preds.values())).k
    fig.suptitle(f"Predicting survival from FP statistics ({k}-fold CV)", fontsize=11)
    return save(
        fig,
        out,
        "prediction_roc",
        "Survival prediction: ROC",
        "Can FP statistics alone tell which features will survive compression?",
    )


def marginal_auc_bars(ctx: Context, out: Path) -> Figure:
    """Marginal AUC of each FP predictor as bars from 0.5, strongest predictor on top."""
    rows, preds = _estimable(ctx, need_bits=False)
    if rows.empty:
        raise SkipFigure(_no_prediction_reason(ctx))
    cells = [(row, preds[tuple(row[CELL])]) for _, row in rows.iterrows()]
    aucs = pd.DataFrame(
        [{n: v.auc for n, v in (p.marginal or {}).items()} for _, p in cells]
    ).astype(float)
    if aucs.empty or aucs.isna().all().all():
        raise SkipFigure("no marginal AUCs in the estimable predictions")
    order = (aucs - 0.5).abs().mean().sort_values().index.tolist()  # weakest first: bottom
    height = 0.8 / len(cells)
    fig, ax = plt.subplots(
        figsize=(
            6.4,
            0.32 * len(order) * max(1, len(cells)) ** 0.5 + 1.4 + legend_rows(len(cells), 1),
        ),
        layout="constrained",
    )
    y = np.arange(len(order))
    for i, (row, _) in enumerate(cells):
        vals = aucs.iloc[i].reindex(order).to_numpy() - 0.5
        ax.barh(
            y + 0.4 - (i + 0.5) * height,
            vals,
            left=0.5,
            height=height,
            label=label(row, ctx.n_sweeps, with_bits=True),
        )
    ax.axvline(0.5, color="black", lw=0.8)
    ax.set_yticks(y, order)
    ax.set_xlim(0, 1)
    ax.set_xlabel(
        "marginal ROC AUC for 'survived' (bars start at 0.5)\n"
        "right: higher value → more survival; left: higher value → less survival"
    )
    ax.set_title("Which FP statistic predicts survival? (strongest on top)")
    ax.grid(axis="x", alpha=0.3)
    legend_below(fig, [ax], ncols=1)
    return save(
        fig,
        out,
        "marginal_auc",
        "Survival prediction: marginal AUC per predictor",
        "Which single FP statistic best separates surviving from damaged features?",
    )
