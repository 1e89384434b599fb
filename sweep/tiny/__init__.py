"""The embedded default model `tiny`: a small GPT-NeoX LM, its tokenizer and a residual SAE.

Everything is trained offline from the installed Python's own documentation
(`pydoc_data.topics`) by `python -m sweep.tiny.build`; the committed artefacts live in
`ASSET_DIR` (`lm/`, `sae/`, `heldout.txt`, `manifest.json`).
"""

from pathlib import Path

ASSET_DIR: Path = Path(__file__).parent / "assets"
