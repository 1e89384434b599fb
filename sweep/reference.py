"""The FP reference: what the compressed pass needs from the full-precision model.

Computed once per (model, SAEs, token set, reference settings) and shared by every job of a
sweep through an on-disk cache: content-hashed key, tensors + checksummed manifest written
atomically (temp file + rename, manifest last) under a file lock, so concurrent jobs compute
it once and never read a half-written entry; a corrupt entry is detected and recomputed.
"""

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from filelock import FileLock
from safetensors.torch import load_file, save_file

from sweep.errors import QfeatError
from sweep.record import check_writable, write_json_atomic
from sweep.sparse import NonzeroFinder

log = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 2: the FP SAE-fit metrics travel with the reference
TENSORS_FILE, MANIFEST_FILE = "reference.safetensors", "reference.json"


@dataclass
class SparseCodes:
    """One SAE's FP codes over all measured tokens, in CSR form (rows = tokens, seq-major)."""

    values: torch.Tensor
    features: torch.Tensor
    row_ptr: torch.Tensor
    d_sae: int

    @classmethod
    def from_dense(cls, codes: torch.Tensor, finder: NonzeroFinder | None = None) -> "SparseCodes":
        """Compress one dense [rows, d_sae] batch, keeping every nonzero exactly."""
        flat = (finder or NonzeroFinder())(codes)
        n_rows, d_sae = codes.shape
        row_ptr = torch.searchsorted(flat, torch.arange(n_rows + 1, device=flat.device) * d_sae)
        features = (flat % d_sae).to(torch.int32)
        return cls(codes.reshape(-1)[flat].cpu(), features.cpu(), row_ptr.cpu(), d_sae)

    @classmethod
    def concat(cls, parts: list["SparseCodes"]) -> "SparseCodes":
        """Stack batches' rows in order."""
        offsets = torch.tensor([0] + [int(p.row_ptr[-1]) for p in parts[:-1]]).cumsum(0)
        row_ptr = torch.cat(
            [torch.zeros(1, dtype=torch.int64)]
            + [p.row_ptr[1:] + off for p, off in zip(parts, offsets, strict=True)]
        )
        values = torch.cat([p.values for p in parts])
        features = torch.cat([p.features for p in parts])
        return cls(values, features, row_ptr, parts[0].d_sae)

    def flat(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows start..stop as (flat indices into a dense [stop − start, d_sae] batch, values)."""
        lo, hi = int(self.row_ptr[start]), int(self.row_ptr[stop])
        counts = self.row_ptr[start + 1 : stop + 1] - self.row_ptr[start:stop]
        rows = torch.repeat_interleave(torch.arange(stop - start), counts)
        return rows * self.d_sae + self.features[lo:hi], self.values[lo:hi]

    def dense(self, start: int, stop: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """Rows start..stop as a dense [stop − start, d_sae] tensor."""
        flat, values = self.flat(start, stop)
        out = torch.zeros((stop - start) * self.d_sae, dtype=self.values.dtype)
        out[flat] = values
        return out.reshape(stop - start, self.d_sae).to(device)


@dataclass
class Reference:
    """FP codes per hook, per-token FP loss, top-k FP log-probs for KL, FP sliding perplexity."""

    codes: dict[str, SparseCodes]
    nll: torch.Tensor
    topk_logprobs: torch.Tensor
    topk_ids: torch.Tensor
    sliding_ppl: float | None
    sae_fit: dict = field(default_factory=dict)

    def to_tensors(self) -> tuple[dict[str, torch.Tensor], dict]:
        """Flat tensors for safetensors and the JSON-able rest."""
        tensors = {"nll": self.nll, "topk_logprobs": self.topk_logprobs, "topk_ids": self.topk_ids}
        for i, c in enumerate(self.codes.values()):
            tensors |= {
                f"codes{i}.values": c.values,
                f"codes{i}.features": c.features,
                f"codes{i}.row_ptr": c.row_ptr,
            }
        hooks = {hook: c.d_sae for hook, c in self.codes.items()}
        return tensors, {"hooks": hooks, "sliding_ppl": self.sliding_ppl, "sae_fit": self.sae_fit}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], meta: dict) -> "Reference":
        """Inverse of to_tensors."""
        codes = {
            hook: SparseCodes(
                tensors[f"codes{i}.values"],
                tensors[f"codes{i}.features"],
                tensors[f"codes{i}.row_ptr"],
                d_sae,
            )
            for i, (hook, d_sae) in enumerate(meta["hooks"].items())
        }
        return cls(
            codes,
            tensors["nll"],
            tensors["topk_logprobs"],
            tensors["topk_ids"],
            meta["sliding_ppl"],
            meta["sae_fit"],
        )


def reference_key(identity: dict, tokens: torch.Tensor) -> str:
    """Content hash of what determines the reference: configs, settings and the tokens."""
    blob = json.dumps({**identity, "format": FORMAT_VERSION}, sort_keys=True, default=str)
    digest = hashlib.sha256(blob.encode())
    digest.update(tokens.to(torch.int64).cpu().numpy().tobytes())
    return digest.hexdigest()[:24]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_reference(entry: Path, ref: Reference) -> None:
    """Write tensors then the checksummed manifest, each atomically."""
    entry.mkdir(parents=True, exist_ok=True)
    tensors, meta = ref.to_tensors()
    tmp = entry / f".{TENSORS_FILE}.tmp"
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp))
    tmp.replace(entry / TENSORS_FILE)
    path = entry / TENSORS_FILE
    manifest = {"format": FORMAT_VERSION, "size": path.stat().st_size, "sha256": _sha256(path)}
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
            and _sha256(path) == meta["sha256"]
        )
        if ok:
            return Reference.from_tensors(load_file(str(path)), meta)
    except (OSError, ValueError, KeyError) as err:
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
        try:
            save_reference(entry, ref)
        except OSError as err:
            raise QfeatError(f"cannot write FP reference {str(entry)!r}: {err.strerror}") from err
        return ref, True


def weights_digest(module: torch.nn.Module) -> str:
    """sha256 of a module's parameters and buffers (cheap for an SAE; identifies its weights)."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
