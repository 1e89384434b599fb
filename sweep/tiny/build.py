"""Build the `tiny` model reproducibly: `python -m sweep.tiny.build [--out DIR] [--quick]`.

Stages: texts -> tokenizer -> LM -> activations -> one SAE per family -> quality -> manifest.
Writes OUT/lm (HF model + tokenizer), OUT/sae/<family> (SAE-Lens format; relu, jumprelu,
topk), OUT/heldout.txt (the measured text), OUT/heldout_tokens.safetensors (the token rows the
quality figures are measured on) and OUT/manifest.json.
`--quick` shrinks every stage (smoke test; quality is not meaningful).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import random
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sae_lens import SAE
from transformers import AutoModelForCausalLM

from sweep.tiny import ASSET_DIR, quality
from sweep.tiny import tokenizer as tok_lib
from sweep.tiny.heldout import measured_tokens
from sweep.tiny.resume import MANIFEST, Prior, file_digests
from sweep.tiny.texts import gather, join
from sweep.tiny.train_lm import LMSettings, train_lm
from sweep.tiny.train_sae import FAMILIES, TL_KWARGS, SAESettings, hook_name, save_sae, train_sae

log = logging.getLogger("sweep.tiny.build")

VOCAB_SIZE = 2048
HELDOUT_FRAC = 0.2  # of pydoc's characters, by overlap group
STDLIB_HELDOUT_FRAC = 0.1  # of the stdlib files, by path hash
PYDOC_REPEATS = 3  # prose's weight beside the code in the LM's and SAEs' training text
SPLIT_SEED = 0
N_THREADS = 2


@dataclass
class BuildSettings:
    """Every knob of a build: the LM, one SAE per family, how much text each stage reads."""

    lm: LMSettings
    saes: dict[str, SAESettings]
    sae_train_tokens: int = 2_000_000
    quality_stdlib_chunks: int = 1600


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch; pin threads and ask torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(N_THREADS)
    torch.use_deterministic_algorithms(True)


def settings_for(quick: bool) -> BuildSettings:
    """The settings of a full or `--quick` build (smoke test: every stage, tiny budgets)."""
    if quick:
        return BuildSettings(
            lm=LMSettings(steps=4, batch_size=8, warmup_steps=1),
            saes={f: SAESettings(family=f, steps=10, batch_size=256) for f in FAMILIES},
            sae_train_tokens=20_000,
            quality_stdlib_chunks=8,
        )
    saes = {f: SAESettings(family=f) for f in FAMILIES}
    # Its quadratic L0 loss kills latents whose threshold outruns them: at lr 1e-3 19% of the
    # latents were dead on held-out text, at 4e-4 10.8%.
    saes["jumprelu"].lr = 2e-4
    return BuildSettings(lm=LMSettings(), saes=saes)


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


def sample_rows(chunks: torch.Tensor, n_tokens: int, seed: int) -> torch.Tensor:
    """A seeded random subset of chunks holding about `n_tokens` non-BOS tokens."""
    n = max(1, min(len(chunks), n_tokens // (chunks.shape[1] - 1)))
    order = torch.randperm(len(chunks), generator=torch.Generator().manual_seed(seed))
    return chunks[order[:n].sort().values]


class Stages:
    """Wall time of each build stage, and which stages were reused from an earlier run."""

    def __init__(self) -> None:
        """Start the clock of the first stage."""
        self.times_s: dict[str, float] = {}
        self.reused: list[str] = []
        self._start = time.time()

    def done(self, stage: str, reused_time_s: float | None = None) -> None:
        """Close `stage`: its own time, or the earlier run's when it was reused."""
        now = time.time()
        if reused_time_s is None:
            self.times_s[stage] = round(now - self._start, 1)
        else:
            self.times_s[stage] = reused_time_s
            self.reused.append(stage)
        self._start = now


def write_manifest(out: Path, manifest: dict[str, Any]) -> None:
    """Write out/manifest.json with the sha256 of every file written so far (after each stage,
    so a killed build resumes from the stages it completed)."""
    manifest["files"] = file_digests(out)
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def build(out: Path, quick: bool = False) -> dict[str, Any]:
    """Run every stage into `out` and return the manifest (also written to out/manifest.json).

    Stages an earlier run into `out` completed with the same settings and inputs, and whose
    files are unchanged, are reused (`sweep.tiny.resume`); the manifest lists them."""
    t0 = time.time()
    bs = settings_for(quick)
    lm_s = bs.lm
    prior = Prior(out)
    stages = Stages()
    seed_everything(lm_s.seed)
    out.mkdir(parents=True, exist_ok=True)
    lm_dir = out / "lm"
    layer = next(iter(bs.saes.values())).layer

    log.info("[1/6] texts: pydoc topics (by overlap group) + CPython stdlib (by path hash)")
    texts = gather(HELDOUT_FRAC, STDLIB_HELDOUT_FRAC, PYDOC_REPEATS, SPLIT_SEED)
    (out / "heldout.txt").write_text(texts.heldout_pydoc, encoding="utf-8")
    stages.done("texts")

    log.info("[2/6] tokenizer: byte-level BPE, vocab %d, train split only", VOCAB_SIZE)
    tokenizer = tok_lib.train_tokenizer(texts.tokenizer_docs, VOCAB_SIZE)
    bos = tokenizer.bos_token_id
    train_ids = torch.tensor(tok_lib.encode(tokenizer, join(texts.train_docs)))
    measured = measured_tokens(
        texts, tokenizer, train_ids, lm_s.context_size, bs.quality_stdlib_chunks, quick
    )
    measured.save(out)
    held_pydoc, held_stdlib = measured.pydoc, measured.stdlib
    log.info("train tokens %d, held-out pydoc tokens %d", train_ids.numel(), held_pydoc.numel())
    manifest: dict[str, Any] = {
        "name": "tiny",
        "quick": quick,
        "complete": False,
        "hook_name": hook_name(layer),
        "layer": layer,
        "d_model": lm_s.d_model,
        "vocab_size": len(tokenizer),
        "bos_token_id": bos,
        "context_size": lm_s.context_size,
        "model_from_pretrained_kwargs": TL_KWARGS,
        "corpus": {
            **texts.record,
            "train_tokens": int(train_ids.numel()),
            "heldout_tokens": int(held_pydoc.numel()),
            "heldout_stdlib_tokens": int(held_stdlib.numel()),
        },
        "lm_settings": asdict(lm_s),
        "saes": {},
        "threads": N_THREADS,
        "versions": versions(),
    }
    stages.done("tokenizer")

    if prior.lm_reusable(manifest):
        log.info("[3/6] LM: reusing %s (same settings, corpus and versions)", lm_dir)
        model = AutoModelForCausalLM.from_pretrained(lm_dir)
        stages.done("lm", prior.stage_time("lm"))
    else:
        log.info("[3/6] LM: GPT-NeoX d=%d L=%d, %d steps", lm_s.d_model, lm_s.n_layers, lm_s.steps)
        seed_everything(lm_s.seed)
        model = train_lm(train_ids, len(tokenizer), lm_s, bos)
        model.save_pretrained(str(lm_dir))
        tok_lib.save_tokenizer(tokenizer, lm_dir)
        stages.done("lm")
    manifest["stage_times_s"] = stages.times_s
    write_manifest(out, manifest)

    log.info("[4/6] activations at %s (BOS excluded)", hook_name(layer))
    train_chunks = quality.chunk_stream(train_ids, lm_s.context_size, bos)
    acts = quality.resid_activations(
        model, sample_rows(train_chunks, bs.sae_train_tokens, lm_s.seed), layer
    )
    held_acts = quality.resid_activations(model, torch.cat([held_pydoc, held_stdlib]), layer)
    manifest["corpus"]["sae_train_tokens"] = int(acts.shape[0])
    stages.done("activations")

    log.info("[5/6] SAEs: %s at %d× d_model", ", ".join(bs.saes), bs.saes["relu"].expansion)
    for family, sae_s in bs.saes.items():
        stage = f"sae_{family}"
        if "lm" in stages.reused and prior.sae_reusable(family, asdict(sae_s), manifest):
            log.info("  %s: reusing %s", family, out / "sae" / family)
            stages.done(stage, prior.stage_time(stage))
        else:
            seed_everything(sae_s.seed)
            save_sae(train_sae(acts, sae_s, lm_s.context_size), out / "sae" / family)
            stages.done(stage)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SAE-Lens' advice on model_from_pretrained_kwargs
            loaded = SAE.load_from_disk(str(out / "sae" / family))
        manifest["saes"][family] = {
            "path": f"sae/{family}",
            "architecture": loaded.cfg.architecture(),
            "d_sae": loaded.cfg.d_sae,
            "settings": asdict(sae_s),
            "heldout": quality.sae_metrics(loaded, held_acts),
        }
        log.info("  %s: %s", family, manifest["saes"][family]["heldout"])
        write_manifest(out, manifest)

    log.info("[6/6] LM quality and properties on held-out text")
    metrics: dict[str, Any] = {
        "lm_heldout_ppl": quality.lm_perplexity(model, held_pydoc),
        "lm_heldout_stdlib_ppl": quality.lm_perplexity(model, held_stdlib),
        "unigram_heldout_ppl": quality.unigram_perplexity(measured.train_counts, held_pydoc[:, 1:]),
        **quality.lm_properties(model, held_pydoc),
    }
    metrics["lm_to_unigram_ppl_ratio"] = metrics["lm_heldout_ppl"] / metrics["unigram_heldout_ppl"]
    for k, v in metrics.items():
        log.info("  %s = %s", k, f"{v:.4f}" if isinstance(v, float) else v)
    stages.done("quality")
    manifest.update(
        complete=True,
        metrics=metrics,
        reused_stages=stages.reused,
        build_time_s=round(sum(stages.times_s.values()), 1),
        wall_time_s=round(time.time() - t0, 1),
    )
    write_manifest(out, manifest)
    log.info(
        "done in %.1f s (a build from nothing: %.1f s) -> %s",
        manifest["wall_time_s"],
        manifest["build_time_s"],
        out,
    )
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
