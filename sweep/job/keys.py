"""A job's identity: its key (a content hash of what determines the result) and its directory,
computed without importing the model stack, so a relaunch finds complete jobs in seconds."""

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from sweep.base.errors import QfeatError
from sweep.config.compression import CompressionConfig
from sweep.config.keyed import keyed_config
from sweep.config.validate import validate
from sweep.results.files import FEATURES_FILE, SUMMARY_FILE, job_dir
from sweep.results.summary import Summary, parse_summary

# Bumped whenever what a job measures, or how its key is formed, changes: part of every job
# key, so a relaunch recomputes results made by older semantics instead of skipping them.
# 2: one config per compression method (a method's unused options and the axes left out).
RESULTS_VERSION = 2


def job_key(keyed: dict[str, Any]) -> str:
    """A short content hash of a keyed config (sweep.config.keyed); equal configs on equal
    inputs share results."""
    blob = json.dumps(
        {**keyed, "results_version": RESULTS_VERSION}, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class JobPlan:
    """A validated job: its compression method, keyed config, key and result directory."""

    method: CompressionConfig
    keyed: dict[str, Any]
    key: str
    out: Path


def plan_job(cfg: DictConfig) -> JobPlan:
    """Validate the config (one line when a value is bad) and place the job."""
    method = validate(cfg)
    keyed = keyed_config(cfg, method)
    key = job_key(keyed)
    return JobPlan(method, keyed, key, job_dir(cfg.out_root, cfg.sweep_name, key))


def completed(plan: JobPlan) -> Summary | None:
    """The job's summary when a finished result for its key is in its directory (the summary
    is written last); None when absent, unreadable or of another key."""
    summary = plan.out / SUMMARY_FILE
    if not (summary.is_file() and (plan.out / FEATURES_FILE).is_file()):
        return None
    try:
        done = parse_summary(json.loads(summary.read_text()))
    except (OSError, ValueError, QfeatError):  # garbage, truncated, other schema: recompute
        return None
    return done if done.key == plan.key else None
