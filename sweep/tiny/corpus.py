"""Text source for `tiny`: the installed Python's pydoc topics, split train / held-out by document.

Why `pydoc_data.topics`: it ships with every CPython install (it backs `help("topic")`), so it
is present offline on any machine; it is English prose (with some code) about Python, i.e.
natural-language-like text an LM and SAE can learn structure from; and it is a plain dict,
so reading it is deterministic. Topics with identical text (e.g. "else" and "if") are kept
once. The split is by document, never by character offset, and never separates two topics
that share a line: pydoc topics repeat whole sections of one another (`compound` holds `with`,
`try`, `if`...), so topics are first joined into overlap groups (any shared line of at least
`MIN_SHARED_LINE` characters), the groups are shuffled with a fixed seed and taken into the
held-out set until it holds `heldout_frac` of the characters. No held-out line of that length
then appears in any train topic. The text differs between Python versions, so the build
records the corpus sha256 and writes the held-out text to `heldout.txt` for measurement.
"""

from __future__ import annotations

import hashlib
import json
import random

EOT = "<|endoftext|>"
MIN_SHARED_LINE = 40  # a line this long shared by two topics puts them on one side


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


def long_lines(text: str, min_len: int = MIN_SHARED_LINE) -> set[str]:
    """The stripped lines of `text` at least `min_len` characters long."""
    return {s for line in text.splitlines() if len(s := line.strip()) >= min_len}


def overlap_groups(topics: dict[str, str]) -> list[list[str]]:
    """Topics joined (transitively) when they share a long line; each group sorted, groups too."""
    parent = {name: name for name in topics}

    def root(name: str) -> str:
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    owner: dict[str, str] = {}
    for name in sorted(topics):
        for line in sorted(long_lines(topics[name])):
            if line in owner:
                parent[root(name)] = root(owner[line])
            else:
                owner[line] = name
    groups: dict[str, list[str]] = {}
    for name in sorted(topics):
        groups.setdefault(root(name), []).append(name)
    return sorted(groups.values())


def split_documents(
    topics: dict[str, str], heldout_frac: float = 0.2, seed: int = 0
) -> tuple[list[str], list[str]]:
    """Return (train_names, heldout_names): a deterministic split by overlap group."""
    groups = overlap_groups(topics)
    random.Random(seed).shuffle(groups)
    total = sum(len(text) for text in topics.values())
    heldout: list[str] = []
    size = 0
    for group in groups:
        if size >= heldout_frac * total:
            break
        if size + sum(len(topics[n]) for n in group) > 2 * heldout_frac * total:
            continue  # a group too large to hold out would leave too little to train on
        heldout.extend(group)
        size += sum(len(topics[n]) for n in group)
    train = [n for n in topics if n not in set(heldout)]
    return sorted(train), sorted(heldout)


def join_documents(topics: dict[str, str], names: list[str]) -> str:
    """Join documents, each followed by the end-of-text marker (one token for the tokenizer)."""
    return "".join(topics[n] + EOT for n in names)


def split_joined(text: str) -> list[str]:
    """Invert `join_documents`: the list of documents in a joined text."""
    return [d for d in text.split(EOT) if d]
