"""Build the `tiny` model reproducibly: `python -m sweep.tiny.build [--out DIR] [--quick]`.

Stages: corpus split -> tokenizer -> LM -> activations -> SAE -> quality -> manifest.
Writes OUT/lm (HF model + tokenizer), OUT/sae (SAE-Lens format), OUT/heldout.txt and
OUT/manifest.json. `--quick` shrinks every stage (smoke test; quality is not meaningful).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import platform
import random
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sweep.tiny import ASSET_DIR, corpus, quality
from sweep.tiny import tokenizer as tok_lib
from sweep.tiny.train_lm import LMSettings, train_lm
from sweep.tiny.train_sae import TL_KWARGS, SAESettings, hook_name, save_sae, train_sae

log = logging.getLogger("sweep.tiny.build")

VOCAB_SIZE = 2048
HELDOUT_FRAC = 0.2
SPLIT_SEED = 0
N_THREADS = 2


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch; pin threads and ask torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(N_THREADS)
    torch.use_deterministic_algorithms(True)


def sha256_file(path: Path) -> str:
    """Return the sha256 hex digest of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def settings_for(quick: bool) -> tuple[LMSettings, SAESettings]:
    """Return the LM and SAE settings of a full or `--quick` build."""
    if quick:
        return LMSettings(steps=4, batch_size=8, warmup_steps=1), SAESettings(steps=20)
    return LMSettings(), SAESettings()


def versions() -> dict[str, str]:
    """Versions of the interpreter and libraries that produced the artefacts."""
    import sae_lens
    import tokenizers
    import transformers

    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "sae_lens": sae_lens.__version__,
        "numpy": np.__version__,
    }


def build(out: Path, quick: bool = False) -> dict[str, Any]:
    """Run every stage into `out` and return the manifest (also written to out/manifest.json)."""
    t0 = time.time()
    lm_s, sae_s = settings_for(quick)
    seed_everything(lm_s.seed)
    out.mkdir(parents=True, exist_ok=True)
    lm_dir, sae_dir = out / "lm", out / "sae"

    log.info("[1/6] corpus: pydoc_data.topics, document-level split")
    topics = corpus.load_topics()
    train_names, heldout_names = corpus.split_documents(topics, HELDOUT_FRAC, SPLIT_SEED)
    heldout_text = corpus.join_documents(topics, heldout_names)
    (out / "heldout.txt").write_text(heldout_text, encoding="utf-8")

    log.info("[2/6] tokenizer: byte-level BPE, vocab %d, train split only", VOCAB_SIZE)
    tokenizer = tok_lib.train_tokenizer([topics[n] for n in train_names], VOCAB_SIZE)
    bos = tokenizer.bos_token_id
    train_ids = torch.tensor(tok_lib.encode(tokenizer, corpus.join_documents(topics, train_names)))
    heldout_chunks = quality.chunk_stream(
        tok_lib.encode(tokenizer, heldout_text), lm_s.context_size, bos
    )
    if quick:
        heldout_chunks = heldout_chunks[:8]
    log.info("train tokens %d, held-out tokens %d", train_ids.numel(), heldout_chunks.numel())

    log.info("[3/6] LM: GPT-NeoX d=%d L=%d, %d steps", lm_s.d_model, lm_s.n_layers, lm_s.steps)
    seed_everything(lm_s.seed)
    model = train_lm(train_ids, len(tokenizer), lm_s, bos)
    model.save_pretrained(str(lm_dir))
    tok_lib.save_tokenizer(tokenizer, lm_dir)

    log.info("[4/6] activations at %s (BOS excluded)", hook_name(sae_s.layer))
    train_chunks = quality.chunk_stream(train_ids, lm_s.context_size, bos)
    if quick:
        train_chunks = train_chunks[:16]
    acts = quality.resid_activations(model, train_chunks, sae_s.layer)

    log.info(
        "[5/6] SAE: standard ReLU, d_sae %d, %d steps", sae_s.expansion * lm_s.d_model, sae_s.steps
    )
    seed_everything(sae_s.seed)
    sae = train_sae(acts, sae_s, lm_s.context_size)
    save_sae(sae, sae_dir)

    log.info("[6/6] quality on held-out split")
    from sae_lens import SAE

    loaded = SAE.load_from_disk(str(sae_dir))
    held_acts = quality.resid_activations(model, heldout_chunks, sae_s.layer)
    metrics: dict[str, Any] = {
        "lm_heldout_ppl": quality.lm_perplexity(model, heldout_chunks),
        "unigram_heldout_ppl": quality.unigram_perplexity(
            train_ids, heldout_chunks[:, 1:], len(tokenizer)
        ),
        **{f"sae_{k}": v for k, v in quality.sae_metrics(loaded, held_acts).items()},
    }
    metrics["lm_to_unigram_ppl_ratio"] = metrics["lm_heldout_ppl"] / metrics["unigram_heldout_ppl"]
    for k, v in metrics.items():
        log.info("  %s = %s", k, f"{v:.4f}" if isinstance(v, float) else v)

    manifest: dict[str, Any] = {
        "name": "tiny",
        "quick": quick,
        "hook_name": hook_name(sae_s.layer),
        "layer": sae_s.layer,
        "d_model": lm_s.d_model,
        "d_sae": sae.cfg.d_sae,
        "vocab_size": len(tokenizer),
        "bos_token_id": bos,
        "context_size": lm_s.context_size,
        "model_from_pretrained_kwargs": TL_KWARGS,
        "corpus": {
            "source": "pydoc_data.topics",
            "sha256": corpus.corpus_sha256(topics),
            "split_seed": SPLIT_SEED,
            "heldout_frac": HELDOUT_FRAC,
            "train_documents": train_names,
            "heldout_documents": heldout_names,
            "train_tokens": int(train_ids.numel()),
            "heldout_tokens": int(heldout_chunks.numel()),
        },
        "lm_settings": asdict(lm_s),
        "sae_settings": asdict(sae_s),
        "threads": N_THREADS,
        "versions": versions(),
        "metrics": metrics,
        "wall_time_s": round(time.time() - t0, 1),
    }
    manifest["files"] = {
        str(p.relative_to(out)): sha256_file(p)
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name != "manifest.json"
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    log.info("done in %.1f s -> %s", manifest["wall_time_s"], out)
    return manifest


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ASSET_DIR, help="output directory")
    parser.add_argument("--quick", action="store_true", help="tiny smoke build (for tests)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    build(args.out, quick=args.quick)


if __name__ == "__main__":
    main()
