"""Where the embedded `tiny` model's committed artefacts live (built by `python -m
sweep.tiny.build`): the LM, its SAEs and the held-out text it is measured on."""

from pathlib import Path

TINY_ASSETS: Path = Path(__file__).resolve().parents[1] / "tiny" / "assets"
# The tiny SAE configs (`sae=<name>`) and the family directory each loads from.
TINY_SAES = {"tiny-relu": "relu", "tiny-jumprelu": "jumprelu", "tiny-topk": "topk"}


def tiny_sae_dir(family: str) -> Path:
    """The SAE-Lens directory of one tiny SAE family."""
    return TINY_ASSETS / "sae" / family
