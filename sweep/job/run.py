"""One job, top to bottom: plan (validate, key), skip if complete, then its stages in order."""

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from omegaconf import DictConfig

from sweep.base.atomic import check_writable
from sweep.base.errors import one_line
from sweep.job import wandb_queue
from sweep.job.keys import JobPlan, completed, plan_job
from sweep.job.record import summarise, write_results
from sweep.job.stages import (
    CompressStage,
    compress,
    derive,
    fidelity,
    fp_reference,
    load_inputs,
    load_tokens,
    measure_variants,
)
from sweep.passes.reference_cache import check_cache_root
from sweep.results.summary import Summary

log = logging.getLogger("qfeat")


@dataclass(frozen=True)
class JobResult:
    """A job's summary, and whether it was already complete (nothing was computed)."""

    summary: Summary
    skipped: bool


class Stages:
    """Times each stage and logs one line when it ends."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self.start = time.perf_counter()

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self.timings[name] = time.perf_counter() - start
        log.info("%-10s %7.2fs", name, self.timings[name])


def run(
    cfg: DictConfig, plan: JobPlan | None = None, compress_stage: CompressStage = compress
) -> JobResult:
    """Run one job (or read back its complete result) and return its summary. `plan` is the
    config's plan when the caller made it already; `compress_stage` makes the compressed
    variants (an audit loads its candidate instead)."""
    plan = plan or plan_job(cfg)
    if (done := completed(plan)) is not None:
        log.info("skipped: complete result for key %s at %s", plan.key, plan.out)
        return JobResult(done, skipped=True)
    check_writable(plan.out)
    check_cache_root(cfg.reference_cache)
    log.info("job %s -> %s", plan.key, plan.out)
    torch.manual_seed(cfg.seed)
    if cfg.runtime.num_threads:
        torch.set_num_threads(cfg.runtime.num_threads)
    stage = Stages()
    try:
        with stage("tokens"):
            sets = load_tokens(cfg, plan.method)
        with stage("load"):
            loaded = load_inputs(cfg)
        with stage("reference"):
            ref = fp_reference(cfg, plan.keyed, loaded, sets)
        with stage("compress"):
            variants = compress_stage(cfg, plan.method, loaded, sets)
            loaded.fp_model = None  # compressed in place, or replaced: never held beside it
        with stage("measure"):
            measured = measure_variants(cfg, ref, variants, loaded, sets)
        with stage("derive"):
            found = derive(cfg, ref, measured, loaded, sets)
        with stage("fidelity"):
            fidelity(cfg, found, measured, loaded, sets)
        with stage("record"):
            wall = time.perf_counter() - stage.start
            summary = summarise(cfg, plan, found, ref, loaded, stage.timings, wall)
            write_results(plan, found, summary)
    except BaseException as err:  # its wandb run says it failed, and why
        wandb_queue.hand_off(cfg, plan.key, plan.out, error=one_line(err))
        raise
    wandb_queue.hand_off(cfg, plan.key, plan.out)  # made from the files, off this job's path
    log_outcome(summary)
    return JobResult(summary, skipped=False)


def log_outcome(summary: Summary) -> None:
    """The job's closing lines: classes with the uncertain share, perplexity, and a warning
    when its numbers have not settled with the number of tokens."""
    m, u = summary.metrics, summary.uncertainty
    unsure = f", {100 * m.frac_uncertain:.1f}% uncertain" if m.n_uncertain is not None else ""
    log.info(
        "done %s: %d/%d active features survived (%.1f%%), %.1f%% blurred, %.1f%% destroyed%s;"
        " ppl %.3f -> %.3f",
        summary.key,
        m.n_survived,
        m.n_active,
        100 * m.frac_survived,
        100 * m.frac_blurred,
        100 * m.frac_destroyed,
        unsure,
        m.fp_ppl,
        m.q_ppl,
    )
    if u is not None and u.settled is False:
        log.warning("token set: %s", u.settle_note)
