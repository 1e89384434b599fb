"""The FP reference cache: computed once per (model, SAEs, token set, reference settings) and
shared by every job of every sweep under one root (a shared filesystem on a cluster).

Content-hashed key; tensors + checksummed manifest written atomically (temp file + rename,
manifest last) under a file lock, so concurrent jobs compute it once and never read a
half-written entry; a corrupt entry is detected and recomputed. Files follow the umask, so a
group sharing the cache can read it.
"""

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

import torch
from filelock import FileLock
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from sweep.base.atomic import atomic_write, check_writable, write_json_atomic
from sweep.base.errors import QfeatError, one_line
from sweep.base.fingerprint import sha256_file
from sweep.passes.reference import Reference

log = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 2: the FP SAE-fit metrics travel with the reference
TENSORS_FILE, MANIFEST_FILE = "reference.safetensors", "reference.json"


def reference_key(identity: dict, tokens: torch.Tensor) -> str:
    """Content hash of what determines the reference: configs, settings and the tokens."""
    blob = json.dumps({**identity, "format": FORMAT_VERSION}, sort_keys=True, default=str)
    digest = hashlib.sha256(blob.encode())
    digest.update(tokens.to(torch.int64).cpu().numpy().tobytes())
    return digest.hexdigest()[:24]


def save_reference(entry: Path, ref: Reference) -> None:
    """Write tensors then the checksummed manifest, each atomically and readable as the umask
    says; a failed write (disk full, quota) is one line naming the file and leaves no entry
    that looks complete (the manifest is written last)."""
    tensors, meta = ref.to_tensors()
    path = entry / TENSORS_FILE
    contiguous = {k: v.contiguous() for k, v in tensors.items()}
    try:
        atomic_write(path, lambda tmp: save_file(contiguous, tmp))
    except SafetensorError as err:  # safetensors reports I/O failures as its own error
        raise QfeatError(f"cannot write FP reference {str(path)!r}: {one_line(err)}") from err
    manifest = {"format": FORMAT_VERSION, "size": path.stat().st_size, "sha256": sha256_file(path)}
    write_json_atomic(entry / MANIFEST_FILE, {**manifest, **meta})


def load_reference(entry: Path) -> Reference | None:
    """The cached reference, or None when absent, incomplete, corrupt or of another format."""
    manifest_path, path = entry / MANIFEST_FILE, entry / TENSORS_FILE
    if not manifest_path.is_file():
        return None
    try:
        meta = json.loads(manifest_path.read_text())
        ok = (
            meta.get("format") == FORMAT_VERSION
            and path.is_file()
            and path.stat().st_size == meta["size"]
            and sha256_file(path) == meta["sha256"]
        )
        if ok:
            return Reference.from_tensors(load_file(str(path)), meta)
    except (OSError, ValueError, KeyError, TypeError) as err:
        log.warning("unreadable FP reference at %s (%s)", entry, err)
    log.warning("FP reference at %s is corrupt or incomplete; recomputing", entry)
    return None


def check_cache_root(root: str | None) -> None:
    """Fail early, before any model loads, if the cache root cannot be written (a probe file of
    a unique name: jobs of one sweep check the same root at once)."""
    if root is None:
        return
    check_writable(Path(root), what="the FP reference cache")


def load_or_compute(
    root: str | None, key: str, compute: Callable[[], Reference]
) -> tuple[Reference, bool]:
    """The reference for `key` and whether this call computed it (root None: no cache)."""
    if root is None:
        return compute(), True
    entry = Path(root) / key
    cached = load_reference(entry)
    if cached is not None:
        return cached, False
    with FileLock(str(Path(root) / f"{key}.lock")):
        cached = load_reference(entry)
        if cached is not None:
            return cached, False
        ref = compute()
        save_reference(entry, ref)
        return ref, True


def weights_digest(module: torch.nn.Module) -> str:
    """sha256 of a module's parameters and buffers (cheap for an SAE; identifies its weights)."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
