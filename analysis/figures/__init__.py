"""Every figure of a report, in order: this module alone knows the topic modules; each figure
answers one question, and absent data skips it with a note (analysis.figures.base.SkipFigure)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from analysis.figures.attribution import attribution_heatmap
from analysis.figures.base import Context, Figure, SkipFigure
from analysis.figures.compare import damage_scatter, overlap_matrix, overlap_vs_bits
from analysis.figures.fidelity import ablate_r_vs_dppl, ablate_r_vs_r, steer_r_vs_dppl, steer_r_vs_r
from analysis.figures.ppl import dppl_vs_degraded
from analysis.figures.predict import marginal_auc_bars, prediction_roc
from analysis.figures.survival import class_stacks, r_ecdf, survival_per_sae, survival_vs_bits
from analysis.figures.uncertainty import convergence, uncertainty_by_tokens
from analysis.load.collect import Collection
from analysis.tables.summarize import survival_summary

log = logging.getLogger("qfeat.analysis")


def registry() -> list[Callable[[Context, Path], Figure]]:
    """Every figure function, in report order."""
    return [
        survival_vs_bits,
        survival_per_sae,
        attribution_heatmap,
        class_stacks,
        r_ecdf,
        convergence,
        uncertainty_by_tokens,
        dppl_vs_degraded,
        prediction_roc,
        marginal_auc_bars,
        damage_scatter,
        overlap_vs_bits,
        overlap_matrix,
        steer_r_vs_r,
        steer_r_vs_dppl,
        ablate_r_vs_r,
        ablate_r_vs_dppl,
    ]


def make_figures(
    col: Collection, out: Path, n_boot: int = 2000, seed: int = 0
) -> tuple[list[Figure], list[tuple[str, str]]]:
    """Draw every figure into out/; returns the figures written and (name, reason) skipped."""
    any_summary = next(iter(col.summaries.values()), None)
    surv = (any_summary.config.get("survival") if any_summary else None) or {}
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
