"""The token rows `tiny`'s quality figures are measured on, and the train split's unigram
counts: written beside the artefacts, so any Python recomputes the figures from committed files
(the pydoc and stdlib text they come from differs between CPython versions)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import PreTrainedTokenizerFast

from sweep.tiny import quality
from sweep.tiny import tokenizer as tok_lib
from sweep.tiny.texts import Texts

TOKENS_FILE = "heldout_tokens.safetensors"


@dataclass
class MeasuredTokens:
    """Held-out pydoc and stdlib rows ([n, context], BOS-prefixed) and train token counts."""

    pydoc: torch.Tensor
    stdlib: torch.Tensor
    train_counts: torch.Tensor

    def save(self, out: Path) -> None:
        """Write out/heldout_tokens.safetensors (token ids as int16: the vocabulary is 2048)."""
        save_file(
            {
                "pydoc": self.pydoc.to(torch.int16).contiguous(),
                "stdlib": self.stdlib.to(torch.int16).contiguous(),
                "train_counts": self.train_counts.to(torch.int64).contiguous(),
            },
            str(out / TOKENS_FILE),
        )

    @classmethod
    def load(cls, out: Path) -> MeasuredTokens:
        """Read what `save` wrote, ids as int64."""
        tensors = load_file(str(out / TOKENS_FILE))
        return cls(**{name: t.to(torch.int64) for name, t in tensors.items()})


def measured_tokens(
    texts: Texts,
    tokenizer: PreTrainedTokenizerFast,
    train_ids: torch.Tensor,
    context_size: int,
    stdlib_chunks: int,
    quick: bool,
) -> MeasuredTokens:
    """The held-out rows as the build measures them, and the counts of the train ids."""
    bos = tokenizer.bos_token_id
    pydoc = quality.chunk_stream(tok_lib.encode(tokenizer, texts.heldout_pydoc), context_size, bos)
    stdlib = quality.chunk_stream(
        tok_lib.encode(tokenizer, texts.heldout_stdlib), context_size, bos
    )[:stdlib_chunks]
    counts = torch.bincount(train_ids.flatten(), minlength=len(tokenizer))
    return MeasuredTokens(pydoc[:8] if quick else pydoc, stdlib, counts)
