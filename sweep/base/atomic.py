"""Files written atomically (temp file + rename) with group-readable permissions, and the write
check a job makes before any heavy work."""

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sweep.base.errors import QfeatError


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


def atomic_write(path: Path, write: Callable[[str], Any]) -> None:
    """`write(tmp)` then rename onto `path`; permissions follow the umask (mkstemp's are 0600),
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


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write JSON so readers see the old file or the whole new one, never a partial one."""

    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(payload, f, indent=2, sort_keys=True, default=str, allow_nan=True)
            f.flush()
            os.fsync(f.fileno())

    atomic_write(path, write)


def write_parquet_atomic(path: Path, frame: Any) -> None:
    """Write a pandas DataFrame as parquet atomically (temp file + rename)."""
    atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))
