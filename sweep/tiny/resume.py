"""Resume a `tiny` build: reuse the stages an earlier run into the same directory completed.

The LM takes about 12 minutes of a build on 2 cores and each (family, layer) SAE several more,
so a build that was killed, or rerun after changing one SAE's settings, should not start over.
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
from sweep.base.paths import TINY_MANIFEST, tiny_sae_relpath


def file_digests(out: Path, under: str = "") -> dict[str, str]:
    """sha256 of every file below `out / under` (paths relative to `out`), manifest excluded."""
    root = out / under if under else out
    return {
        str(p.relative_to(out)): file_digest(p)
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != TINY_MANIFEST
    }


class Prior:
    """What an earlier run recorded in `out/manifest.json` (nothing if there is none)."""

    def __init__(self, out: Path) -> None:
        """Read the manifest, if any; an unreadable one counts as none."""
        self.out = out
        try:
            self.record: dict[str, Any] = json.loads((out / TINY_MANIFEST).read_text())
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

    def sae_reusable(self, key: str, settings: dict, current: dict[str, Any]) -> bool:
        """The SAE `key` ("<family>/layer<L>", in out/sae/<key>) was trained with these
        settings on the same training activations as the build in progress (`current`) has,
        and is unchanged (only asked once the LM those activations come from was reused)."""
        prior = self.record.get("saes", {}).get(key, {})
        sae_tokens = self.record.get("corpus", {}).get("sae_train_tokens")
        path = tiny_sae_relpath(settings["family"], settings["layer"])
        return (
            prior.get("settings") == settings
            and prior.get("path") == path
            and sae_tokens == current["corpus"]["sae_train_tokens"]
            and sae_stage(key) in self.record.get("stage_times_s", {})
            and self._files_intact(path)
        )

    def stage_time(self, stage: str) -> float:
        """The recorded wall time of a stage of the earlier run."""
        return float(self.record["stage_times_s"][stage])


def sae_key(family: str, layer: int) -> str:
    """Key of a (family, layer) SAE in the manifest's `saes`: "<family>/layer<L>"."""
    return tiny_sae_relpath(family, layer).removeprefix("sae/")


def sae_stage(key: str) -> str:
    """Name of the build stage that trains SAE `key` ("sae_<family>_layer<L>")."""
    return "sae_" + key.replace("/", "_")


def _corpus_hashes(corpus: dict) -> tuple:
    return (corpus.get("pydoc", {}).get("sha256"), corpus.get("stdlib", {}).get("sha256"))
