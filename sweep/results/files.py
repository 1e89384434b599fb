"""Every file a job or a launch writes, by name; where a job's directory is."""

from pathlib import Path

FEATURES_FILE = "features.parquet"
SUMMARY_FILE = "summary.json"
FAILURE_FILE = "failure.json"
OUTCOME_FILE = "outcome.json"  # in each Hydra job dir: what became of the job
# Per job beside features.parquet: each feature's top contexts and the measured token set they
# point into (seq, pos, token_id, text).
CONTEXTS_FILE = "contexts.parquet"
TOKENS_FILE = "tokens.parquet"
# compression=gguf with deployed=true: features.parquet's columns for llama.cpp's own forward.
DEPLOYED_FEATURES_FILE = "features_deployed.parquet"
JOBS_DIR = "jobs"


def job_dir(out_root: str | Path, sweep_name: str, key: str) -> Path:
    """<out_root>/<sweep_name>/jobs/<key>/"""
    return Path(out_root) / sweep_name / JOBS_DIR / key
