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

from sweep.constants import (
    FEATURES_FILE,
    JOBS_DIR,
    NON_KEY_FIELDS,
    RESULTS_VERSION,
    SUMMARY_FILE,
)
from sweep.errors import QfeatError

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


def input_digests(cfg: DictConfig) -> dict[str, str | None]:
    """Content digest of every local input a job reads (None: a hub id, identified by name)."""
    from sweep.data import local_data_path
    from sweep.fingerprint import content_digest
    from sweep.models import local_model_dir
    from sweep.saes import local_sae_path

    return {
        "model": content_digest(local_model_dir(cfg.model)),
        "sae": content_digest(local_sae_path(cfg.sae)),
        "data": content_digest(local_data_path(cfg.data)),
        "candidate": content_digest(cfg.candidate),
    }


# Where each local input's path sits in the config: replaced by its content digest in keys.
_PATH_FIELDS = {"model": ("model", "path"), "sae": ("sae", "path"), "data": ("data", "path")}


def keyed_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config minus where/how the job runs, local paths replaced by content.

    Two checkouts, or cluster nodes mounting the same files at different paths, get the same
    key; a file rewritten in place gets a new one.
    """
    resolved = OmegaConf.to_container(cfg, resolve=True)
    keyed = {k: v for k, v in resolved.items() if k not in NON_KEY_FIELDS and k != "hydra"}
    digests = input_digests(cfg)
    for role, (group, name) in _PATH_FIELDS.items():
        if digests[role] is not None:
            keyed[group] = {**keyed[group], name: None}
    if digests["candidate"] is not None:
        keyed["candidate"] = None
    return {**keyed, "inputs": digests}


def job_key(cfg: DictConfig) -> str:
    """A short content hash of the keyed config; equal configs on equal inputs share results."""
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
    except (OSError, ValueError, AttributeError):  # garbage or truncated: recompute
        return False


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_writable(directory: Path, what: str = "results") -> None:
    """Fail before any heavy work when `what` could not be written to `directory` (the probe
    has a unique name, so concurrent jobs checking one directory do not race)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=directory, prefix=".write-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise QfeatError(f"cannot write {what} to {str(directory)!r}: {err.strerror}") from err


def _atomic_replace(path: Path, write) -> None:
    """Write via a temp file and rename; permissions follow the umask (mkstemp's are 0600),
    so a cache or results directory shared by a group stays readable by it. A failed write
    (disk full, quota, permissions) is one line naming the path and leaves nothing behind."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())
        write(tmp)
        os.replace(tmp, path)
    except OSError as err:
        raise QfeatError(f"cannot write {str(path)!r}: {err.strerror or err}") from err
    finally:
        if tmp is not None and os.path.exists(tmp):
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
