"""Job identity and result files: key, paths, atomic writes, provenance."""

import hashlib
import json
import os
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from sweep.constants import FEATURES_FILE, JOBS_DIR, RESULTS_VERSION, SUMMARY_FILE
from sweep.schema import NON_KEY_FIELDS

TRACKED_PACKAGES = (
    "torch",
    "transformers",
    "transformer-lens",
    "sae-lens",
    "hydra-core",
    "numpy",
    "pandas",
    "scipy",
    "scikit-learn",
    "hqq",
    "optimum-quanto",
)


def keyed_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config minus where/how the job runs: what identifies the measurement."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    return {k: v for k, v in resolved.items() if k not in NON_KEY_FIELDS and k != "hydra"}


def job_key(cfg: DictConfig) -> str:
    """A short content hash of the keyed config; equal configs share results."""
    keyed = {**keyed_config(cfg), "results_version": RESULTS_VERSION}
    blob = json.dumps(keyed, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def job_dir(cfg: DictConfig, key: str) -> Path:
    """<out_root>/<sweep_name>/jobs/<key>/"""
    return Path(cfg.out_root) / cfg.sweep_name / JOBS_DIR / key


def is_complete(directory: Path, key: str) -> bool:
    """True when a finished result for `key` is in `directory` (summary is written last)."""
    summary = directory / SUMMARY_FILE
    if not (summary.is_file() and (directory / FEATURES_FILE).is_file()):
        return False
    try:
        return json.loads(summary.read_text()).get("key") == key
    except json.JSONDecodeError:
        return False


def _atomic_replace(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json_atomic(path: Path, payload: dict) -> None:
    """Write JSON so readers see the old file or the whole new one, never a partial one."""

    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(payload, f, indent=2, sort_keys=True, default=str, allow_nan=True)
            f.flush()
            os.fsync(f.fileno())

    _atomic_replace(path, write)


def write_parquet_atomic(path: Path, frame: pd.DataFrame) -> None:
    """Write a parquet file atomically (temp file + rename)."""
    _atomic_replace(path, lambda tmp: frame.to_parquet(tmp, index=False))


def library_versions() -> dict[str, str | None]:
    """Installed versions of the libraries a result depends on."""
    out: dict[str, str | None] = {}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit() -> str | None:
    """The qfeat source commit (with '+dirty' when modified), or None outside a checkout."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return sha + ("+dirty" if dirty else "")
