"""Byte-level BPE tokenizer for `tiny`, trained on the train split only (GPT-NeoX style)."""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from sweep.tiny.corpus import EOT


def train_tokenizer(documents: list[str], vocab_size: int = 2048) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on `documents`; `<|endoftext|>` (id 0) is BOS, EOS, UNK and PAD."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(documents, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=EOT,
        eos_token=EOT,
        unk_token=EOT,
        pad_token=EOT,
        model_max_length=1_000_000,
    )


def encode(tokenizer: PreTrainedTokenizerFast, text: str) -> list[int]:
    """Token ids of `text` with no special tokens added (`<|endoftext|>` in text maps to id 0)."""
    return tokenizer.backend_tokenizer.encode(text, add_special_tokens=False).ids


def save_tokenizer(tokenizer: PreTrainedTokenizerFast, path: Path) -> None:
    """Save the tokenizer in HF format next to the LM (`AutoTokenizer.from_pretrained(path)`)."""
    tokenizer.save_pretrained(str(path))
