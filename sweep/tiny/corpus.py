"""Text source for `tiny`: the installed Python's pydoc topics, split train / held-out by document.

Why `pydoc_data.topics`: it ships with every CPython install (it backs `help("topic")`), so it
is present offline on any machine; it is English prose (with some code) about Python, i.e.
natural-language-like text an LM and SAE can learn structure from; and it is a plain dict,
so reading it is deterministic. Topics with identical text (e.g. "else" and "if") are kept
once. The split is by document (topic name), never by character
offset, so no held-out sentence is ever seen in training: topic names are sorted, shuffled
with a fixed seed, and taken in that order into the held-out set until it holds
`heldout_frac` of the characters. Its text differs between Python versions, so the build
records the corpus sha256 and writes the held-out text to `heldout.txt` for measurement.
"""

from __future__ import annotations

import hashlib
import json
import random

EOT = "<|endoftext|>"


def load_topics() -> dict[str, str]:
    """Return the pydoc topics (name -> text), duplicates dropped so a split cannot leak text."""
    from pydoc_data.topics import topics

    unique: dict[str, str] = {}
    seen: set[str] = set()
    for name in sorted(topics):  # e.g. "else" and "if" share one text; keep the first name
        if topics[name] not in seen:
            seen.add(topics[name])
            unique[name] = topics[name]
    return unique


def corpus_sha256(topics: dict[str, str]) -> str:
    """Return a sha256 of the corpus (sorted JSON), to record which text a build used."""
    blob = json.dumps(topics, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


def split_documents(
    topics: dict[str, str], heldout_frac: float = 0.2, seed: int = 0
) -> tuple[list[str], list[str]]:
    """Return (train_names, heldout_names): a deterministic document-level split."""
    names = sorted(topics)
    random.Random(seed).shuffle(names)
    total = sum(len(topics[n]) for n in names)
    heldout: list[str] = []
    size = 0
    for name in names:
        if size >= heldout_frac * total:
            break
        heldout.append(name)
        size += len(topics[name])
    train = [n for n in names if n not in set(heldout)]
    return sorted(train), sorted(heldout)


def join_documents(topics: dict[str, str], names: list[str]) -> str:
    """Join documents, each followed by the end-of-text marker (one token for the tokenizer)."""
    return "".join(topics[n] + EOT for n in names)


def split_joined(text: str) -> list[str]:
    """Invert `join_documents`: the list of documents in a joined text."""
    return [d for d in text.split(EOT) if d]
