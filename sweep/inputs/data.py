"""The measured token set: fixed-length BOS-prefixed sequences, deterministic given the seed."""

import codecs
import itertools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from sweep.base.errors import QfeatError
from sweep.base.registry import Registry
from sweep.config.locations import TINY_HELDOUT
from sweep.inputs.hub import load_error

# A token source turns the data config into raw text; one per sweep.config.locations.DATA_SOURCES.
TOKEN_SOURCES: Registry[Callable[[DictConfig], str]] = Registry("data source")


# Byte-order marks that name a text file's encoding (UTF-16/32 text written by Windows tools).
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def decode_text(raw: bytes, name: str) -> str:
    """Text of a file: UTF-8, or the UTF-16/32 its byte-order mark names; else one clear error."""
    encoding = next((enc for bom, enc in _BOMS if raw.startswith(bom)), "utf-8")
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as err:
        raise QfeatError(
            f"text file {name!r} is not {encoding.upper()} text (undecodable byte at offset "
            f"{err.start}); convert it, e.g. `iconv -f <encoding> -t utf-8`"
        ) from err
    if "\x00" in text:
        raise QfeatError(f"text file {name!r} holds NUL characters: it looks binary, not text")
    if not text.strip():
        raise QfeatError(f"text file {name!r} is empty")
    return text


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise QfeatError(f"text file {str(path)!r} does not exist")
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise QfeatError(f"cannot read text file {str(path)!r}: {err.strerror or err}") from err
    return decode_text(raw, str(path))


@TOKEN_SOURCES.register("tiny_heldout")
def tiny_heldout_text(cfg: DictConfig) -> str:
    """Held-out documents of the tiny model's corpus, never seen in LM or SAE training."""
    return _read_text(TINY_HELDOUT)


@TOKEN_SOURCES.register("text_file")
def text_file(cfg: DictConfig) -> str:
    """Any local UTF-8 text file given as data.path."""
    if not cfg.path:
        raise QfeatError("data.source=text_file needs data.path")
    return _read_text(Path(cfg.path))


# Defaults of the hub source; `data.text_column`, `data.split`, `data.max_documents` override them.
@TOKEN_SOURCES.register("hub_dataset")
def hub_dataset_text(cfg: DictConfig) -> str:
    """The first `max_documents` documents of a hub text dataset (`data.path`), streamed in order.

    The repo is resolved through the hub cache (snapshot_download: a download online, the cached
    snapshot with HF_HUB_OFFLINE=1), then its data files are streamed in their fixed order, so the
    text (and, with the seed, the token set) is the same on every machine; documents are joined
    by a blank line. `data.path` may also be a local dataset directory.
    """
    from datasets import load_dataset
    from huggingface_hub import snapshot_download

    if not cfg.path:
        raise QfeatError("data.source=hub_dataset needs data.path (a hub dataset id)")
    try:
        local = (
            cfg.path
            if Path(cfg.path).is_dir()
            else snapshot_download(cfg.path, repo_type="dataset")
        )
        rows = load_dataset(local, split=cfg.split, streaming=True)
        docs = [row[cfg.text_column] for row in itertools.islice(rows, cfg.max_documents)]
    except KeyError as err:
        raise QfeatError(f"dataset {cfg.path!r} has no text column {cfg.text_column!r}") from err
    except (OSError, ConnectionError, ValueError) as err:
        raise load_error("dataset", cfg.path, err, " --repo-type dataset") from err
    if not docs:
        raise QfeatError(f"dataset {cfg.path!r} split {cfg.split!r} has no documents")
    return "\n\n".join(docs)


def chunk_tokens(ids: list[int], seq_len: int, bos_id: int) -> torch.Tensor:
    """Non-overlapping chunks of seq_len − 1 tokens, each prefixed with BOS: [n, seq_len]."""
    body = seq_len - 1
    n = len(ids) // body
    chunks = torch.tensor(ids[: n * body], dtype=torch.long).reshape(n, body)
    return torch.cat([torch.full((n, 1), bos_id, dtype=torch.long), chunks], dim=1)


def build_token_sets(
    cfg: DictConfig, tokenizer, n_calibration: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Measured sequences and a disjoint calibration slice, both drawn (seeded) from the source.

    Returns ([n_sequences, seq_len], [n_calibration, seq_len]); chunks never overlap.
    """
    text = TOKEN_SOURCES.get(cfg.source)(cfg)
    bos_id = tokenizer.bos_token_id
    if bos_id is None:
        raise QfeatError("the tokenizer defines no BOS token; cannot build BOS-prefixed sequences")
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    chunks = chunk_tokens(ids, cfg.seq_len, bos_id)
    needed = cfg.n_sequences + n_calibration
    if len(chunks) < needed:
        raise QfeatError(
            f"token set too small: data {cfg.name!r} gives {len(chunks)} sequences of "
            f"{cfg.seq_len} tokens, {needed} requested "
            f"(data.n_sequences={cfg.n_sequences} + {n_calibration} for calibration)"
        )
    order = np.random.default_rng(cfg.seed).permutation(len(chunks))
    measured = np.sort(order[: cfg.n_sequences])
    calibration = np.sort(order[cfg.n_sequences : needed])
    return chunks[torch.from_numpy(measured)], chunks[torch.from_numpy(calibration)]
