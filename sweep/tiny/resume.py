"""Resume a `tiny` build: reuse the stages an earlier run into the same directory completed.

The LM takes most of a build (about 12 of 35 minutes on 2 cores) and each SAE several more, so
a build that was killed, or rerun after changing one family's settings, should not start over.
The build writes its manifest after every stage; a stage is reused only when the manifest
records exactly the settings and inputs it would train with now and every file it wrote still
has the recorded sha256. Anything else (other settings, another corpus, an edited or missing
file) retrains that stage and everything after it. Training is deterministic (seeded, fixed
threads, deterministic kernels), so a reused stage equals what retraining it would give.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sweep.base.fingerprint import file_digest

MANIFEST = "manifest.json"


def file_digests(out: Path, under: str = "") -> dict[str, str]:
    """sha256 of every file below `out / under` (paths relative to `out`), manifest excluded."""
    root = out / under if under else out
    return {
        str(p.relative_to(out)): file_digest(p)
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }


class Prior:
    """What an earlier run recorded in `out/manifest.json` (nothing if there is none)."""

    def __init__(self, out: Path) -> None:
        """Read the manifest, if any; an unreadable one counts as none."""
        self.out = out
        try:
            self.record: dict[str, Any] = json.loads((out / MANIFEST).read_text())
        except (OSError, ValueError):
            self.record = {}

    def _files_intact(self, under: str) -> bool:
        recorded = {
            k: v for k, v in self.record.get("files", {}).items() if k.startswith(f"{under}/")
        }
        return bool(recorded) and file_digests(self.out, under) == recorded

    def lm_reusable(self, current: dict[str, Any]) -> bool:
        """The LM and tokenizer in out/lm were trained as the build in progress (its partial
        manifest `current`) would train them, and are unchanged."""
        keys = ("quick", "lm_settings", "versions", "vocab_size", "bos_token_id", "threads")
        return (
            all(self.record.get(k) == current[k] for k in keys)
            and _corpus_hashes(self.record.get("corpus", {})) == _corpus_hashes(current["corpus"])
            and "lm" in self.record.get("stage_times_s", {})
            and self._files_intact("lm")
        )

    def sae_reusable(self, family: str, settings: dict, current: dict[str, Any]) -> bool:
        """The SAE in out/sae/<family> was trained with these settings on the same training
        activations as the build in progress (`current`) has, and is unchanged (only asked
        once the LM those activations come from has been reused)."""
        prior = self.record.get("saes", {}).get(family, {})
        sae_tokens = self.record.get("corpus", {}).get("sae_train_tokens")
        return (
            prior.get("settings") == settings
            and sae_tokens == current["corpus"]["sae_train_tokens"]
            and f"sae_{family}" in self.record.get("stage_times_s", {})
            and self._files_intact(f"sae/{family}")
        )

    def stage_time(self, stage: str) -> float:
        """The recorded wall time of a stage of the earlier run."""
        return float(self.record["stage_times_s"][stage])


def _corpus_hashes(corpus: dict) -> tuple:
    return (corpus.get("pydoc", {}).get("sha256"), corpus.get("stdlib", {}).get("sha256"))
