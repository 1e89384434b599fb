"""qfeat-plan's procedure: check the request, measure the uniform widths and each part alone,
search greedily on the additive estimate, verify with a real mixed job, and raise again on
the verified shortfall until a verified job meets the target."""

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from sweep.base.errors import QfeatError
from sweep.config.compose import compose_config
from sweep.config.compression import MixedConfig
from sweep.config.locations import model_identity
from sweep.job.keys import plan_job
from sweep.planning.jobs import JobOutcome, JobRunner
from sweep.planning.parts import (
    Part,
    bits_per_weight,
    mixed_overrides,
    mixed_parts,
    select_parts,
)
from sweep.planning.request import Request
from sweep.planning.search import (
    Offsets,
    Outcome,
    Problem,
    Target,
    estimate,
    greedy,
    lower,
    meets,
)

MAX_ROUNDS = 64  # verify rounds; each moves at least one part (raising, then lowering)


@dataclass(frozen=True)
class Row:
    """One assignment's verified result, as the plan-vs-uniform table shows it."""

    name: str
    bits: list[int]
    bits_per_weight: float
    outcome: Outcome
    job: JobOutcome
    met: bool


@dataclass(frozen=True)
class Plan:
    """Everything qfeat-plan found: parts, attribution, the verified plan, uniform rows."""

    request: Request
    parts: list[Part]
    problem: Problem
    plan: Row
    rounds: list[Row]
    uniform: list[Row]
    model: str  # its identity (content digest or hub id): the plan's for_model
    method: MixedConfig  # the job's mixed config: the method's options, calibration


def make_plan(req: Request) -> Plan:
    """Run the plan's jobs and search; bad input is a QfeatError before the first job."""
    base = [f"out_root={req.out}", "sweep_name=plan", *req.overrides]
    cfg = compose_config([*base, "compression=mixed", f"compression.method={req.method}"])
    method = plan_job(cfg).method  # its options and the job config, checked before any job
    model = model_identity(cfg.model)
    target = replace(req.target, survived_r=cfg.survival.survived)
    watch = list(cfg.survival.watch)
    if target.min_watched_r is not None and not watch:
        raise QfeatError("min_watched_r needs watched features: add survival.watch=[id,...]")
    parts = select_parts(cfg.model, req.targets, req.blocks)
    runner = JobRunner(base)
    widths = list(req.bits)

    def row(name: str, bits: list[int]) -> Row:
        job = runner(mixed_overrides(req.method, mixed_parts(parts, bits), model), name)
        outcome = Outcome(job.r, job.delta_ppl, target.survived_r, runner.watched(watch))
        return Row(name, bits, bits_per_weight(parts, bits), outcome, job, meets(outcome, target))

    n = len(parts)
    widest = row(f"uniform {widths[-1]} bits", [widths[-1]] * n)
    if not widest.met:
        raise QfeatError(
            f"the target is out of reach of bits={widths}: uniform {widths[-1]} bits, the widest "
            f"assignment, verified at {_describe(widest.outcome)}"
        )
    uniform = [row(f"uniform {b} bits", [b] * n) for b in widths[:-1]] + [widest]
    problem = attribute(runner, req.method, parts, widths, model, watch)
    plan, rounds = search(problem, target, row, widest)
    return Plan(req, parts, problem, plan, rounds, uniform, model, method)


def attribute(
    runner: JobRunner,
    method: str,
    parts: list[Part],
    widths: list[int],
    model: str,
    watch: list[int],
) -> Problem:
    """One job per part and width below the widest: only that part compressed."""
    n_features = None
    damage, ppl = [], []
    for part in parts:
        per_width, ppl_width = [], []
        for width in widths[:-1]:
            one = [{"targets": [part.kind], "blocks": [part.block], "bits": width}]
            job = runner(mixed_overrides(method, one, model), f"{part.label} @ {width}")
            per_width.append(1.0 - job.r)
            ppl_width.append(job.delta_ppl)
            n_features = len(job.r)
        damage.append([*per_width, np.zeros(n_features)])
        ppl.append([*ppl_width, 0.0])
    return Problem(
        bits=tuple(widths),
        weights=np.array([p.n_weights for p in parts], dtype=float),
        damage=np.array(damage),
        delta_ppl=np.array(ppl),
        watched=runner.watched(watch),
    )


def search(
    problem: Problem, target: Target, row: Callable[[str, list[int]], Row], widest: Row
) -> tuple[Row, list[Row]]:
    """Greedy on the estimate, then verify; a miss corrects the estimate by what the verified
    job showed (Offsets.verified: per feature, and ΔPPL) and the search raises again from
    there. Once a job meets the target, the corrected estimate lowers parts while it still
    meets it, verified the same way (a miss keeps the last verified plan)."""
    levels = np.zeros(len(problem.weights), dtype=int)
    offsets, rounds, best = Offsets(), [], None
    while len(rounds) < MAX_ROUNDS:
        if best is None:
            step = greedy(problem, target, levels, offsets)
            if not step.met or (rounds and not step.steps):
                return widest, rounds  # the estimate cannot reach it below the widest: use that
        else:
            step = lower(problem, target, levels, offsets)
            if not step.steps:
                break
        levels = step.levels
        verified = row(f"plan (verify {len(rounds) + 1})", [problem.bits[i] for i in levels])
        rounds.append(verified)
        if best is not None and not verified.met:
            break
        if verified.met:
            best = verified
        est = estimate(problem, levels, Offsets(), target.survived_r)
        offsets = Offsets.verified(est, verified.outcome)
    return (best or widest), rounds


def _describe(outcome: Outcome) -> str:
    watched = outcome.watched_min_r
    return (
        f"{100 * outcome.frac_survived:.1f}% survived"
        + ("" if watched is None else f", watched min r {watched:.4f}")
        + f", ΔPPL {outcome.delta_ppl:+.4f}"
    )
