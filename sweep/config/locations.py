"""Where each input of a job lives, and which names the config may use for it: path logic only
(no loading), so keys and checks run before any heavy import."""

import hashlib
import json
from pathlib import Path

from omegaconf import DictConfig

from sweep.base.errors import QfeatError
from sweep.base.fingerprint import content_digest
from sweep.base.paths import TINY_ASSETS, TINY_SAES, tiny_sae_dir, tiny_sae_layers

# model.name -> its HF repo id or directory unless model.path overrides it ("hf": any, by path).
MODEL_PATHS = {
    "tiny": str(TINY_ASSETS / "lm"),
    "pythia-70m": "EleutherAI/pythia-70m-deduped",
    "gemma-2-2b": "google/gemma-2-2b",
    "hf": "",
}
# sae.name values: local SAE-Lens directories, and SAE-Lens releases.
LOCAL_SAES = ("local", *TINY_SAES)
RELEASE_SAES = ("sae_lens", "pythia-70m-res-sm", "gemma-scope-2b-res-16k")
SAE_NAMES = (*LOCAL_SAES, *RELEASE_SAES)
# data.source values.
DATA_SOURCES = ("tiny_heldout", "text_file", "hub_dataset")
TINY_HELDOUT = TINY_ASSETS / "heldout.txt"


def check_name(kind: str, name: str, valid: tuple[str, ...] | list[str]) -> None:
    """One line naming the valid choices when `name` is not one of them."""
    if name not in valid:
        raise QfeatError(f"unknown {kind} {name!r}; choose one of: {', '.join(sorted(valid))}")


def model_path(cfg: DictConfig) -> str:
    """The HF repo id or directory of `cfg.model`."""
    check_name("model", cfg.name, list(MODEL_PATHS))
    path = cfg.path or MODEL_PATHS[cfg.name]
    if not path:
        raise QfeatError(f"model.name={cfg.name} needs model.path (an HF repo id or directory)")
    return path


def local_model_dir(cfg: DictConfig) -> Path | None:
    """The model's checkpoint directory when it is local (None for an HF hub id)."""
    path = Path(model_path(cfg))
    return path if path.is_dir() else None


def model_identity(cfg: DictConfig) -> str:
    """What a plan names its model by: a local checkpoint's content digest, else its hub id."""
    return content_digest(local_model_dir(cfg)) or model_path(cfg)


def model_depth(cfg: DictConfig) -> int | None:
    """The number of transformer blocks of a local checkpoint, from its config.json alone
    (None for a hub id or a config without one)."""
    directory = local_model_dir(cfg)
    config = directory / "config.json" if directory else None
    if config is None or not config.is_file():
        return None
    values = json.loads(config.read_text())
    depth = values.get("num_hidden_layers", values.get("n_layer"))
    return int(depth) if depth is not None else None


def sae_layers(cfg: DictConfig) -> list[int]:
    """The layers a job measures: `sae.layers` if given, else `[sae.layer]`."""
    return list(cfg.layers) if cfg.layers else [cfg.layer]


def local_sae_path(cfg: DictConfig, layer: int) -> Path | None:
    """The SAE-Lens directory the local SAE at `layer` loads from: `sae.path` (`{layer}` in it
    is filled in), else the embedded tiny build's SAE of that family and layer; None for a
    release SAE."""
    if cfg.path:
        return Path(str(cfg.path).replace("{layer}", str(layer)))
    family = TINY_SAES.get(cfg.name)
    return tiny_sae_dir(family, layer) if family else None


def check_tiny_sae_layers(cfg: DictConfig) -> None:
    """Every layer asked of an embedded tiny SAE was built (read from the build's manifest)."""
    family = TINY_SAES.get(cfg.name)
    if family is None or cfg.path:
        return
    built = tiny_sae_layers(family)
    missing = [layer for layer in sae_layers(cfg) if layer not in built]
    if missing:
        raise QfeatError(
            f"SAE {cfg.name!r} has no layer {', '.join(map(str, missing))}; the embedded "
            f"build has it at layers {built}"
        )


def local_sae_digest(cfg: DictConfig) -> str | None:
    """Content digest of the local SAEs a job reads (None for release SAEs). One layer: its
    directory's digest; several: a digest of each layer's, so any file of any layer counts."""
    paths = {layer: local_sae_path(cfg, layer) for layer in sae_layers(cfg)}
    digests = {layer: content_digest(path) for layer, path in paths.items()}
    if len(digests) == 1:
        return next(iter(digests.values()))
    if any(d is None for d in digests.values()):
        return None
    parts = "\0".join(f"{layer}:{d}" for layer, d in sorted(digests.items()))
    return hashlib.sha256(parts.encode()).hexdigest()


def local_data_path(cfg: DictConfig) -> Path | None:
    """The local file or directory the token set is read from; None for a hub dataset id."""
    if cfg.source == "tiny_heldout":
        return TINY_HELDOUT
    if cfg.path and Path(cfg.path).exists():
        return Path(cfg.path)
    return None
