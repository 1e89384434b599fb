"""More training text for `tiny`: the installed CPython's own standard library, split by file.

Every CPython install carries its standard library as source (code, comments and docstrings),
so it is present offline on any machine, a few MB of text beside pydoc's 0.5 MB. Files under
test directories, `site-packages` and the encodings' code tables are left out (test data and
hex tables, not language), and so is `pydoc_data` itself: it *is* the pydoc corpus, whose
held-out topics are measured. A file's side of the split is decided by the sha256 of its path
relative to the standard library, so it does not depend on which other files are installed.
The text differs between Python versions; the build records the sha256 of what it read.
"""

from __future__ import annotations

import hashlib
import sysconfig
from pathlib import Path

EXCLUDED_PARTS = frozenset({"test", "tests", "idle_test", "site-packages", "pydoc_data"})
EXCLUDED_PREFIXES = ("encodings/cp", "encodings/iso", "encodings/mac", "encodings/koi8")


def stdlib_root() -> Path:
    """Directory of the running interpreter's pure-Python standard library."""
    return Path(sysconfig.get_paths()["stdlib"])


def _kept(rel: Path) -> bool:
    return not set(rel.parts) & EXCLUDED_PARTS and not rel.as_posix().startswith(EXCLUDED_PREFIXES)


def load_files(root: Path | None = None) -> dict[str, str]:
    """The kept `.py` files (relative posix path -> text), sorted; non-UTF-8 files skipped."""
    root = stdlib_root() if root is None else root
    files: dict[str, str] = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if not _kept(rel):
            continue
        try:
            files[rel.as_posix()] = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
    return files


def is_heldout(rel_path: str, heldout_frac: float) -> bool:
    """Whether a file is held out: the first 8 bytes of sha256(path), as a fraction, < frac."""
    digest = hashlib.sha256(rel_path.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < heldout_frac


def split_files(files: dict[str, str], heldout_frac: float) -> tuple[list[str], list[str]]:
    """(train paths, held-out paths), each sorted."""
    held = [p for p in sorted(files) if is_heldout(p, heldout_frac)]
    return [p for p in sorted(files) if p not in set(held)], held


def files_sha256(files: dict[str, str]) -> str:
    """sha256 over every (path, text) pair in order: which text a build read."""
    h = hashlib.sha256()
    for path in sorted(files):
        h.update(path.encode("utf-8") + b"\0" + files[path].encode("utf-8") + b"\0")
    return h.hexdigest()
