"""What became of each job of a launch, and the one table a multirun ends with.

Every job writes an `outcome.json` into its Hydra job directory (`<sweep dir>/<job num>/`),
whatever the launcher, since that directory is on the filesystem the launch can read. A
launcher that sees a job die without reporting (cancelled, out of time) writes a failed outcome
for it. At the end of a multirun sweep.cli.callbacks.OutcomeReport prints one line per job and
exits non-zero if any job failed, so a sweep's exit status tells the truth.
"""

import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sweep.base.atomic import write_json_atomic
from sweep.results.files import OUTCOME_FILE
from sweep.results.summary import Summary

log = logging.getLogger("qfeat")

COMPLETE, SKIPPED, FAILED = "complete", "skipped", "failed"


@dataclass
class Outcome:
    """One job's end state, as the launch reports it."""

    job: str
    overrides: list[str] = field(default_factory=list)
    status: str = FAILED
    key: str | None = None
    frac_survived: float | None = None
    frac_uncertain: float | None = None  # active features whose r interval straddles a threshold
    delta_ppl: float | None = None
    error: str | None = None
    same_as: str | None = None  # the job of this launch with the same key, which ran for both


def finished(job: str, overrides: list[str], status: str, summary: Summary) -> Outcome:
    """The outcome of a job that has a complete summary (computed now, or found complete)."""
    m = summary.metrics
    return Outcome(
        job=job,
        overrides=overrides,
        status=status,
        key=summary.key,
        frac_survived=m.frac_survived,
        frac_uncertain=m.frac_uncertain,
        delta_ppl=m.delta_ppl,
    )


def write_outcome(job_dir: Path, outcome: Outcome) -> None:
    """Record a job's outcome in its Hydra job directory (atomically)."""
    write_json_atomic(Path(job_dir) / OUTCOME_FILE, asdict(outcome))


def read_outcomes(sweep_dir: Path) -> list[Outcome]:
    """Every job outcome under a sweep directory, in job order; unreadable files are failures."""
    outcomes = []
    for path in Path(sweep_dir).glob(f"*/{OUTCOME_FILE}"):
        try:
            outcomes.append(Outcome(**json.loads(path.read_text())))
        except (OSError, ValueError, TypeError) as err:
            outcomes.append(Outcome(job=path.parent.name, error=f"unreadable outcome: {err}"))
    return sorted(outcomes, key=lambda o: (len(o.job), o.job))


def varying_overrides(outcomes: list[Outcome]) -> list[list[str]]:
    """Each job's overrides, less those every job shares (they do not tell jobs apart)."""
    shared = set.intersection(*(set(o.overrides) for o in outcomes)) if outcomes else set()
    return [[x for x in o.overrides if x not in shared] for o in outcomes]


def _fmt(value: float | None, scale: float = 1.0, spec: str = ".1f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return format(value * scale, spec)


def outcome_table(outcomes: list[Outcome]) -> str:
    """One line per job: number, varying overrides, status, % survived, % uncertain, ΔPPL or
    the error."""
    labels = [" ".join(v) or "(no overrides)" for v in varying_overrides(outcomes)]
    width = max([len(label) for label in labels] + [len("overrides")])
    head = f"{'% surv':>6}  {'% unc':>5}  {'ΔPPL':>8}"
    rows = [f"{'job':>4}  {'overrides':<{width}}  {'status':<8}  {head}"]
    for o, label in zip(outcomes, labels, strict=True):
        tail = (
            f"{_fmt(o.frac_survived, 100):>6}  {_fmt(o.frac_uncertain, 100):>5}  "
            f"{_fmt(o.delta_ppl, spec='+.3f'):>8}"
            if o.status != FAILED
            else o.error or "no error recorded"
        )
        if o.same_as is not None and o.status != FAILED:
            tail += f"  (same key as job {o.same_as})"
        rows.append(f"{o.job:>4}  {label:<{width}}  {o.status:<8}  {tail}")
    return "\n".join(rows)
