"""Tests of the embedded `tiny` model: the build runs, its outputs load, and quality holds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from sweep.tiny import ASSET_DIR, corpus, quality
from sweep.tiny import tokenizer as tok_lib

REPO = Path(__file__).resolve().parents[1]
N_CHUNKS = 120  # ~15k held-out tokens: enough for stable metrics, a few seconds on CPU


def _load(out: Path) -> tuple:
    """Load LM, tokenizer, SAE and manifest from a build directory."""
    from sae_lens import SAE
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(out / "lm")
    tokenizer = AutoTokenizer.from_pretrained(out / "lm")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sae = SAE.load_from_disk(str(out / "sae"))
    manifest = json.loads((out / "manifest.json").read_text())
    return model, tokenizer, sae, manifest


def _check_consistent(model, tokenizer, sae, manifest: dict) -> None:
    """Hook name, layer and widths of the SAE agree with the LM."""
    layer = manifest["layer"]
    assert sae.cfg.metadata.hook_name == f"blocks.{layer}.hook_resid_post"
    assert sae.cfg.metadata.hook_name == manifest["hook_name"]
    assert 0 < layer < model.config.num_hidden_layers - 1
    assert sae.cfg.d_in == model.config.hidden_size == manifest["d_model"]
    assert sae.cfg.metadata.model_name == "tiny"
    assert sae.cfg.metadata.prepend_bos is True
    assert sae.cfg.metadata.context_size == model.config.max_position_embeddings
    assert sae.cfg.metadata.model_from_pretrained_kwargs == {
        "fold_ln": False,
        "center_writing_weights": False,
        "center_unembed": False,
    }
    assert tokenizer.bos_token_id == model.config.bos_token_id
    assert len(tokenizer) == model.config.vocab_size


def test_quick_build_outputs_load(tmp_path: Path) -> None:
    """`python -m sweep.tiny.build --quick` runs and its outputs load with HF and SAE-Lens."""
    out = tmp_path / "tiny"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run(
        [sys.executable, "-m", "sweep.tiny.build", "--quick", "--out", str(out)],
        cwd=tmp_path,
        env=env,
        check=True,
        timeout=600,
    )
    model, tokenizer, sae, manifest = _load(out)
    _check_consistent(model, tokenizer, sae, manifest)
    for name, digest in manifest["files"].items():
        assert (out / name).is_file(), name
        assert len(digest) == 64


@pytest.fixture(scope="module")
def committed() -> tuple:
    """The committed artefacts in sweep/tiny/assets."""
    assert (ASSET_DIR / "manifest.json").is_file(), "run: python -m sweep.tiny.build"
    return _load(ASSET_DIR)


def test_committed_artefacts_consistent(committed: tuple) -> None:
    """The committed LM, tokenizer and SAE agree with each other and are a full build."""
    _check_consistent(*committed)
    assert committed[3]["quick"] is False


@torch.no_grad()
def test_hidden_state_is_block_output(committed: tuple) -> None:
    """HF hidden_states[L + 1] is block L's output (TL blocks.L.hook_resid_post, unprocessed)."""
    model, _, _, manifest = committed
    layer = manifest["layer"]
    captured = []
    handle = model.gpt_neox.layers[layer].register_forward_hook(
        lambda _m, _i, o: captured.append(o[0] if isinstance(o, tuple) else o)
    )
    ids = torch.tensor([[model.config.bos_token_id, 5, 17, 300, 42, 7]])
    try:
        hs = model(input_ids=ids, output_hidden_states=True).hidden_states
    finally:
        handle.remove()
    torch.testing.assert_close(hs[layer + 1], captured[0])


def test_committed_quality_recomputed(committed: tuple) -> None:
    """Recompute held-out quality: LM beats unigram, SAE reconstructs well and sparsely."""
    model, tokenizer, sae, manifest = committed
    ctx, bos = manifest["context_size"], tokenizer.bos_token_id
    heldout = (ASSET_DIR / "heldout.txt").read_text(encoding="utf-8")
    chunks = quality.chunk_stream(tok_lib.encode(tokenizer, heldout), ctx, bos)[:N_CHUNKS]
    assert chunks.numel() > 10_000

    topics = corpus.load_topics()
    held_docs = set(corpus.split_joined(heldout))
    train_text = "".join(t + corpus.EOT for _, t in sorted(topics.items()) if t not in held_docs)
    train_ids = tok_lib.encode(tokenizer, train_text)

    lm_ppl = quality.lm_perplexity(model, chunks)
    uni_ppl = quality.unigram_perplexity(train_ids, chunks[:, 1:], len(tokenizer))
    assert lm_ppl < 0.5 * uni_ppl, (lm_ppl, uni_ppl)

    acts = quality.resid_activations(model, chunks, manifest["layer"])
    m = quality.sae_metrics(sae, acts)
    assert m["explained_variance"] >= 0.7, m
    assert 5 <= m["mean_l0"] <= 100, m
    assert m["dead_fraction"] < 0.3, m


def test_heldout_and_train_documents_disjoint(committed: tuple) -> None:
    """The split is by document: no held-out document is a train document, by name or text."""
    topics = corpus.load_topics()
    train, held = corpus.split_documents(topics)
    assert train and held
    assert not set(train) & set(held)
    assert set(train) | set(held) == set(topics)
    assert corpus.split_documents(topics) == (train, held)  # deterministic

    manifest = committed[3]["corpus"]
    assert not set(manifest["train_documents"]) & set(manifest["heldout_documents"])
    held_texts = corpus.split_joined((ASSET_DIR / "heldout.txt").read_text(encoding="utf-8"))
    assert len(held_texts) == len(manifest["heldout_documents"])
    train_texts = {topics[n] for n in manifest["train_documents"] if n in topics}
    assert not set(held_texts) & train_texts
