"""The embedded default model `tiny`: a small GPT-NeoX LM, its tokenizer and three residual SAEs.

Everything is trained offline from text every CPython install carries (`pydoc_data.topics` and
the standard library's source) by `python -m sweep.tiny.build`; the committed artefacts live in
`ASSET_DIR` (`lm/`, `sae/<family>/` for relu, jumprelu and topk, `heldout.txt`,
`manifest.json`).
"""

from pathlib import Path

ASSET_DIR: Path = Path(__file__).parent / "assets"
