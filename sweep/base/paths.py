"""Where the embedded `tiny` model's committed artefacts live (built by `python -m
sweep.tiny.build`): the LM, its SAEs (one per family and layer) and the held-out text it is
measured on. Path logic only: nothing here loads a model."""

import json
from pathlib import Path

TINY_ASSETS: Path = Path(__file__).resolve().parents[1] / "tiny" / "assets"
TINY_MANIFEST = "manifest.json"
# The tiny SAE configs (`sae=<name>`) and the family directory each loads from.
TINY_SAES = {"tiny-relu": "relu", "tiny-jumprelu": "jumprelu", "tiny-topk": "topk"}


def tiny_sae_relpath(family: str, layer: int) -> str:
    """Path of the (family, layer) SAE directory relative to a build's root."""
    return f"sae/{family}/layer{layer}"


def tiny_sae_dir(family: str, layer: int, root: Path = TINY_ASSETS) -> Path:
    """The SAE-Lens directory of the `family` SAE on the residual stream after block `layer`
    in the build at `root` (default: the committed assets). Names the path only."""
    return root / tiny_sae_relpath(family, layer)


def tiny_sae_layers(family: str, root: Path = TINY_ASSETS) -> list[int]:
    """The layers the build at `root` trained a `family` SAE at, from its manifest (empty when
    there is none)."""
    try:
        saes = json.loads((root / TINY_MANIFEST).read_text(encoding="utf-8"))["saes"]
        return sorted(int(rec["layer"]) for rec in saes.values() if rec["family"] == family)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return []
