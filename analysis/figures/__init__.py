"""Every figure of a report, in order: this module alone knows the topic modules; each figure
answers one question, and absent data skips it with a note (analysis.figures.base.SkipFigure)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Executor, Future
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
from analysis.workers import pool, shared

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


def figure_context(col: Collection, n_boot: int = 2000, seed: int = 0) -> Context:
    """What every figure function gets: the collection, its survival summary, the thresholds."""
    any_summary = next(iter(col.summaries.values()), None)
    surv = (any_summary.config.get("survival") if any_summary else None) or {}
    return Context(
        col=col,
        survival=survival_summary(col, n_boot, seed),
        n_sweeps=col.dims.sweeps,
        thresholds=(float(surv.get("survived", 0.9)), float(surv.get("blurred", 0.5))),
    )


def draw(fn: Callable[[Context, Path], Figure]) -> Figure | tuple[str, str]:
    """One figure into the shared folder, or (its name, why it was skipped) (a drawing task)."""
    ctx, out = shared("figures")
    try:
        figure = fn(ctx, out)
    except SkipFigure as why:
        log.info("figure %s skipped: %s", fn.__name__, why)
        return fn.__name__, str(why)
    log.info("figure %s written", fn.__name__)
    return figure


def submit_figures(executor: Executor) -> list[Future]:
    """One drawing task per figure, on a pool that shares `figures` (its Context, out folder)."""
    return [executor.submit(draw, fn) for fn in registry()]


def gather_figures(futures: list[Future]) -> tuple[list[Figure], list[tuple[str, str]]]:
    """The figures written, in report order, and (name, reason) of those skipped."""
    results = [future.result() for future in futures]
    written = [r for r in results if isinstance(r, Figure)]
    skipped = [r for r in results if not isinstance(r, Figure)]
    return written, skipped


def make_figures(
    col: Collection, out: Path, n_boot: int = 2000, seed: int = 0, workers: int = 1
) -> tuple[list[Figure], list[tuple[str, str]]]:
    """Draw every figure into out/ on `workers` processes; returns the figures written and
    (name, reason) of those skipped."""
    with pool(workers, figures=(figure_context(col, n_boot, seed), out)) as executor:
        return gather_figures(submit_figures(executor))
