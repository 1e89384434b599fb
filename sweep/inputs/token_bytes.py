"""The exact bytes each token id stands for, so a report can decode a context as a whole: a
character that byte-level BPE splits over several tokens decodes correctly once their bytes are
joined, while each token decoded alone gives U+FFFD."""

import re
from functools import cache

from transformers.convert_slow_tokenizer import bytes_to_unicode

BYTE_TOKEN = re.compile(r"<0x([0-9A-Fa-f]{2})>")  # SentencePiece's byte fallback
SPACE = "\u2581"  # SentencePiece's word boundary


@cache
def _byte_of_char() -> dict[str, int]:
    """Byte-level BPE's printable stand-in character of each byte, inverted."""
    return {char: byte for byte, char in bytes_to_unicode().items()}


def token_bytes(tokenizer, ids: list[int]) -> dict[int, bytes]:
    """Each distinct id's bytes: byte-level BPE tokens (GPT-2, GPT-NeoX) map back through the
    byte table; SentencePiece tokens (Gemma) through their byte fallback and word boundary;
    special tokens are their text."""
    unique = sorted(set(ids))
    pieces = tokenizer.convert_ids_to_tokens(unique)
    special = set(tokenizer.all_special_ids)
    byte_level = type(tokenizer.backend_tokenizer.decoder).__name__ == "ByteLevel"
    table = _byte_of_char()
    out = {}
    for i, piece in zip(unique, pieces, strict=True):
        if i in special or piece is None:
            out[i] = tokenizer.decode([i]).encode()
        elif byte_level and all(c in table for c in piece):
            out[i] = bytes(table[c] for c in piece)
        elif match := BYTE_TOKEN.fullmatch(piece):
            out[i] = bytes([int(match.group(1), 16)])
        else:
            out[i] = piece.replace(SPACE, " ").encode()
    return out
