"""Content digests of local input files, so keys follow what a file holds, never where it is.

A rewritten data file, a checkpoint rebuilt in place or an SAE retrained under the same path
must never return a stale result, and two checkouts (or cluster nodes with different mount
points) must share results and FP references. Digests are memoised by (path, size, mtime,
inode): a file is read once per process unless it changes.
"""

import hashlib
import os
from functools import lru_cache
from pathlib import Path

from sweep.base.errors import QfeatError

_BLOCK = 1 << 20


def sha256_file(path: str | Path) -> str:
    """sha256 of a file's bytes, read now (for checksums that must see a damaged file)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_BLOCK), b""):
            h.update(block)
    return h.hexdigest()


@lru_cache(maxsize=4096)
def _file_digest(path: str, size: int, mtime_ns: int, inode: int) -> str:
    return sha256_file(path)


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes (memoised while its size, mtime and inode stay the same)."""
    st = os.stat(path)
    return _file_digest(str(Path(path).resolve()), st.st_size, st.st_mtime_ns, st.st_ino)


def content_digest(path: str | Path | None) -> str | None:
    """Digest of a local file, or of a directory's files (relative names and contents).

    None when `path` is None or not on this filesystem (a hub id, or a path that does not
    exist: the job reports that itself when it loads the input). Hidden files and directories
    (lock files, caches) are ignored.
    """
    if path is None or not Path(path).exists():
        return None
    root = Path(path)
    try:
        if root.is_file():
            return file_digest(root)
        h = hashlib.sha256()
        for file in sorted(p for p in root.rglob("*") if p.is_file()):
            rel = file.relative_to(root)
            if any(part.startswith(".") for part in rel.parts):
                continue
            h.update(f"{rel.as_posix()}\0{file_digest(file)}\0".encode())
        return h.hexdigest()
    except OSError as err:
        raise QfeatError(f"cannot read input {str(path)!r}: {err.strerror or err}") from err
