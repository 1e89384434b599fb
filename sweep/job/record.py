"""The record stage: a job's result files, written atomically with summary.json last, so a
directory with a summary always holds a complete result."""

from datetime import datetime, timezone

from omegaconf import DictConfig, OmegaConf

from sweep.base.atomic import write_json_atomic, write_parquet_atomic
from sweep.base.provenance import git_commit, library_versions
from sweep.config.keyed import AXIS_FIELDS
from sweep.job.keys import JobPlan
from sweep.job.stages import Findings, FPReference, Loaded
from sweep.results.files import FEATURES_FILE, SUMMARY_FILE
from sweep.results.summary import ReferenceInfo, Summary


def summarise(
    cfg: DictConfig,
    plan: JobPlan,
    found: Findings,
    ref: FPReference,
    loaded: Loaded,
    timings: dict[str, float],
    wall_time_s: float,
) -> Summary:
    """The job's summary.json. Its config is the resolved one without the sweep axes (their
    values are the method's own options, e.g. compression.bits)."""
    config = OmegaConf.to_container(cfg, resolve=True)
    for axis in AXIS_FIELDS:
        config.pop(axis, None)
    return Summary(
        key=plan.key,
        created=datetime.now(timezone.utc).isoformat(),
        git_commit=git_commit(),
        versions=library_versions(),
        device=str(loaded.device),
        model=cfg.model.name,
        saes=list(loaded.saes),
        compression=plan.method.name,
        bits=plan.method.weight_bits,
        reference=ReferenceInfo(key=ref.key, computed=ref.computed),
        config=config,
        metrics=found.metrics,
        per_sae=found.per_sae,
        prediction=found.prediction,
        matched=found.matched,
        sae_fit=found.sae_fit,
        fidelity=found.fidelity or None,
        uncertainty=found.uncertainty,
        timings_s=timings,
        wall_time_s=wall_time_s,
        gguf=found.gguf,
    )


def write_results(plan: JobPlan, found: Findings, summary: Summary) -> None:
    """Every result table, then features.parquet, then summary.json (the completion mark)."""
    for name, table in found.tables.items():
        write_parquet_atomic(plan.out / name, table)
    write_parquet_atomic(plan.out / FEATURES_FILE, found.frame)
    write_json_atomic(plan.out / SUMMARY_FILE, summary.to_json())
