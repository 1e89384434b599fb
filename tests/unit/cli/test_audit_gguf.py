"""A GGUF candidate that is not the base model (architecture, shapes, vocabulary) or not a GGUF
is refused in one line, exit 2, from its metadata: before any model loads or any job runs."""

import json
from pathlib import Path

import gguf
import pytest

from conftest import default_sae_dir
from sweep.base.paths import TINY_ASSETS
from sweep.cli import audit

BASE = TINY_ASSETS / "lm"
TINY = json.loads((BASE / "config.json").read_text())
VOCAB = json.loads((BASE / "tokenizer.json").read_text())["model"]["vocab"]


def write_gguf(path: Path, arch: str = "gptneox", layers: int | None = None, swap: bool = False):
    """A tensor-less GGUF carrying tiny's metadata, with one thing changed."""
    tokens = [t for t, _ in sorted(VOCAB.items(), key=lambda kv: kv[1])]
    if swap:
        tokens[5], tokens[6] = tokens[6], tokens[5]
    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(layers or TINY["num_hidden_layers"])
    w.add_embedding_length(TINY["hidden_size"])
    w.add_feed_forward_length(TINY["intermediate_size"])
    w.add_head_count(TINY["num_attention_heads"])
    w.add_token_list(tokens)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: write_gguf(p, arch="llama"), "is a 'llama' GGUF; the base model is 'gpt_neox'"),
        (
            lambda p: write_gguf(p, layers=2),
            "has gptneox.block_count=2; the base model's num_hidden_layers=4",
        ),
        (lambda p: write_gguf(p, swap=True), "vocabulary of 2048 tokens that is not the base"),
        (lambda p: p.write_bytes(b"GGUF garbage"), "is not a readable GGUF file"),
        (lambda p: None, "is not a file"),
    ],
)
def test_a_gguf_of_another_model_is_one_line_before_any_work(
    make, message: str, tmp_path: Path, capsys, monkeypatch
) -> None:
    candidate = tmp_path / "candidate.gguf"
    make(candidate)
    monkeypatch.setattr(audit, "run", lambda *a, **k: pytest.fail("the audit ran a job"))
    fields = [f"base={BASE}", f"candidate={candidate}", f"sae={default_sae_dir()}"]
    assert audit.main([*fields, f"out_root={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
