"""The texts `tiny` is built from: pydoc topics and CPython's stdlib, each split train / held-out.

Train: the train pydoc topics, repeated `pydoc_repeats` times so prose keeps a fair share beside
the much larger code corpus, and the train stdlib files, shuffled together with a fixed seed.
Held-out: the held-out pydoc topics (written as `heldout.txt`: the text qfeat measures) and the
held-out stdlib files (only for quality figures). No document is on both sides, and no held-out
pydoc line of `corpus.MIN_SHARED_LINE`+ characters occurs in any train document.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from sweep.tiny import corpus, stdlib


@dataclass
class Texts:
    """Documents for the tokenizer and LM, held-out text, and what the manifest records."""

    train_docs: list[str]
    tokenizer_docs: list[str]
    heldout_pydoc: str
    heldout_stdlib: str
    record: dict[str, Any]


def gather(heldout_frac: float, stdlib_heldout_frac: float, pydoc_repeats: int, seed: int) -> Texts:
    """Read both corpora from the running interpreter and split them deterministically."""
    topics = corpus.load_topics()
    train_names, heldout_names = corpus.split_documents(topics, heldout_frac, seed)
    files = stdlib.load_files()
    train_files, heldout_files = stdlib.split_files(files, stdlib_heldout_frac)
    pydoc_train = [topics[n] for n in train_names]
    stdlib_train = [files[p] for p in train_files]
    train_docs = pydoc_train * pydoc_repeats + stdlib_train
    random.Random(seed).shuffle(train_docs)
    record = {
        "pydoc": {
            "source": "pydoc_data.topics",
            "sha256": corpus.corpus_sha256(topics),
            "split": "overlap groups (shared lines >= "
            f"{corpus.MIN_SHARED_LINE} chars), seeded shuffle",
            "split_seed": seed,
            "heldout_frac": heldout_frac,
            "repeats_in_train": pydoc_repeats,
            "train_documents": train_names,
            "heldout_documents": heldout_names,
        },
        "stdlib": {
            "source": str(stdlib.stdlib_root()),
            "sha256": stdlib.files_sha256(files),
            "split": "sha256 of the relative path",
            "heldout_frac": stdlib_heldout_frac,
            "n_train_files": len(train_files),
            "heldout_files": heldout_files,
        },
        "train_chars": sum(len(d) for d in train_docs),
    }
    return Texts(
        train_docs=train_docs,
        tokenizer_docs=pydoc_train + stdlib_train,
        heldout_pydoc=corpus.join_documents(topics, heldout_names),
        heldout_stdlib="".join(files[p] + corpus.EOT for p in heldout_files),
        record=record,
    )


def join(docs: list[str]) -> str:
    """Documents joined, each followed by the end-of-text marker."""
    return "".join(d + corpus.EOT for d in docs)
