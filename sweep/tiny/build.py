"""Build the `tiny` model reproducibly: `python -m sweep.tiny.build [--out DIR] [--quick]`.

Stages: texts -> tokenizer -> LM -> activations (every layer, one LM pass) -> one SAE per
(family, layer) -> quality -> manifest. Writes OUT/lm (HF model + tokenizer),
OUT/sae/<family>/layer<L> (SAE-Lens format, hook blocks.<L>.hook_resid_post; JumpReLU and TopK
after every block, ReLU after block 2, see `SAE_PLAN`), OUT/heldout.txt (the measured text),
OUT/heldout_tokens.safetensors (the token rows the quality figures are measured on) and
OUT/manifest.json. `--quick` shrinks every stage (smoke test; quality is not meaningful).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import json
import logging
import platform
import random
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sae_lens import SAE
from transformers import AutoModelForCausalLM

from sweep.base.paths import TINY_MANIFEST, tiny_sae_dir, tiny_sae_relpath
from sweep.tiny import ASSET_DIR, quality
from sweep.tiny import tokenizer as tok_lib
from sweep.tiny.heldout import measured_tokens
from sweep.tiny.resume import Prior, file_digests, sae_key, sae_stage
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
# Families trained at each layer: JumpReLU (qfeat's default) and TopK after every block, ReLU
# after block 2 only (at every layer it would take the build from nothing past 100 minutes).
JUMPRELU_SLOW_LAYER = 3  # the last block's JumpReLU trains at a lower learning rate
SAE_PLAN: dict[str, tuple[int, ...]] = {
    "relu": (2,),
    "jumprelu": (0, 1, 2, 3),
    "topk": (0, 1, 2, 3),
}


@dataclass
class BuildSettings:
    """Every knob of a build: the LM, one SAE per (family, layer), how much text each reads."""

    lm: LMSettings
    saes: list[SAESettings]
    sae_train_tokens: int = 2_000_000
    quality_stdlib_chunks: int = 1600


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch; pin threads and ask torch for deterministic kernels.

    Deterministic mode also fills every new tensor with NaN by default (to expose kernels that
    read uninitialised memory); no kernel here does, so that fill, a full extra write of every
    output, is turned off: it changes no result."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(N_THREADS)
    torch.use_deterministic_algorithms(True)
    torch.utils.deterministic.fill_uninitialized_memory = False


@contextlib.contextmanager
def heap_allocation() -> Iterator[None]:
    """Serve large tensors from glibc's heap, keeping freed memory for reuse (glibc only).

    An SAE step allocates dozens of [batch, d_sae] float tensors (32 MiB at 2048 x 4096), above
    glibc's largest mmap threshold: each is a fresh mmap whose pages the kernel faults in and
    zeroes on first touch, then unmaps. That costs about twice the elementwise op that writes
    the tensor. With mmap off and no trimming, freed blocks are reused, already mapped. Results
    are unchanged (torch aligns every allocation to 64 bytes either way); settings restored on
    exit."""
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name and platform.system() == "Linux" else None
    mallopt = getattr(libc, "mallopt", None)
    m_trim_threshold, m_mmap_max = -1, -4
    if mallopt is not None:
        mallopt(m_mmap_max, 0)
        mallopt(m_trim_threshold, 2**30)
    try:
        yield
    finally:
        if mallopt is not None:
            mallopt(m_mmap_max, 65536)  # glibc's defaults
            mallopt(m_trim_threshold, 128 * 1024)


def sae_settings(quick: bool) -> list[SAESettings]:
    """One SAESettings per (family, layer) of `SAE_PLAN`, in training order (by layer)."""
    out = []
    for layer in sorted({layer for layers in SAE_PLAN.values() for layer in layers}):
        for family in FAMILIES:
            if layer not in SAE_PLAN[family]:
                continue
            if quick:
                out.append(SAESettings(family=family, layer=layer, steps=10, batch_size=256))
                continue
            s = SAESettings(family=family, layer=layer)
            if family == "jumprelu":
                # Its quadratic L0 loss kills latents whose threshold outruns them: at lr 1e-3
                # 19% of the layer-2 latents were dead on held-out text, at 4e-4 10.8%; at 2e-4
                # 6.3% at layer 2 but 10.8% after the last block (explained variance 0.875);
                # at 1e-4 there 6.7% dead but explained variance 0.832, so it trains at 1.5e-4.
                s.lr = 1.5e-4 if layer == JUMPRELU_SLOW_LAYER else 2e-4
            out.append(s)
    return out


def settings_for(quick: bool) -> BuildSettings:
    """The settings of a full or `--quick` build (smoke test: every stage, tiny budgets)."""
    if quick:
        return BuildSettings(
            lm=LMSettings(steps=4, batch_size=8, warmup_steps=1),
            saes=sae_settings(quick=True),
            sae_train_tokens=20_000,
            quality_stdlib_chunks=8,
        )
    return BuildSettings(lm=LMSettings(), saes=sae_settings(quick=False))


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
    (out / TINY_MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def remove_stale_saes(out: Path, keep: list[str]) -> None:
    """Delete files below out/sae that no SAE of this build writes (an earlier layout or plan),
    so the manifest lists exactly the SAEs shipped; empty directories go too."""
    root = out / "sae"
    if not root.is_dir():
        return
    for p in sorted(root.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        rel = p.relative_to(out).as_posix()
        if p.is_file() and not any(rel.startswith(f"{k}/") for k in keep):
            log.info("  removing %s (not an SAE of this build)", rel)
            p.unlink()
        elif p.is_dir() and not any(p.iterdir()):
            p.rmdir()


def build(out: Path, quick: bool = False) -> dict[str, Any]:
    """Run every stage into `out` and return the manifest (also written to out/manifest.json).

    Stages an earlier run into `out` completed with the same settings and inputs, and whose
    files are unchanged, are reused (`sweep.tiny.resume`); the manifest lists them."""
    with heap_allocation():
        return _build(out, quick)


def _build(out: Path, quick: bool) -> dict[str, Any]:
    t0 = time.time()
    bs = settings_for(quick)
    lm_s = bs.lm
    prior = Prior(out)
    stages = Stages()
    seed_everything(lm_s.seed)
    out.mkdir(parents=True, exist_ok=True)
    lm_dir = out / "lm"
    layers = sorted({s.layer for s in bs.saes})

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
        "sae_layers": layers,
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

    log.info("[4/6] activations after blocks %s, one LM pass (BOS excluded)", layers)
    train_chunks = quality.chunk_stream(train_ids, lm_s.context_size, bos)
    acts = quality.resid_activations_layers(
        model, sample_rows(train_chunks, bs.sae_train_tokens, lm_s.seed), layers
    )
    held_acts = quality.resid_activations_layers(
        model, torch.cat([held_pydoc, held_stdlib]), layers
    )
    manifest["corpus"]["sae_train_tokens"] = int(acts[layers[0]].shape[0])
    stages.done("activations")

    keys = [sae_key(s.family, s.layer) for s in bs.saes]
    log.info("[5/6] SAEs at %d× d_model: %s", bs.saes[0].expansion, ", ".join(keys))
    remove_stale_saes(out, [f"sae/{k}" for k in keys])
    for key, sae_s in zip(keys, bs.saes, strict=True):
        stage, path = sae_stage(key), tiny_sae_dir(sae_s.family, sae_s.layer, out)
        reuse = "lm" in stages.reused and prior.sae_reusable(key, asdict(sae_s), manifest)
        if reuse:
            log.info("  %s: reusing %s", key, path)
        else:
            log.info("  %s: training, %d steps of %d", key, sae_s.steps, sae_s.batch_size)
            seed_everything(sae_s.seed)
            save_sae(train_sae(acts[sae_s.layer], sae_s, lm_s.context_size), path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SAE-Lens' advice on model_from_pretrained_kwargs
            loaded = SAE.load_from_disk(str(path))
        manifest["saes"][key] = {
            "family": sae_s.family,
            "layer": sae_s.layer,
            "hook_name": hook_name(sae_s.layer),
            "path": tiny_sae_relpath(sae_s.family, sae_s.layer),
            "architecture": loaded.cfg.architecture(),
            "d_sae": loaded.cfg.d_sae,
            "settings": asdict(sae_s),
            "heldout": quality.sae_metrics(loaded, held_acts[sae_s.layer]),
        }
        stages.done(stage, prior.stage_time(stage) if reuse else None)
        log.info("  %s: %s (%.1f s)", key, manifest["saes"][key]["heldout"], stages.times_s[stage])
        write_manifest(out, manifest)
    del acts

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
