"""The embedded default model `tiny`: a small GPT-NeoX LM, its tokenizer and residual SAEs.

Everything is trained offline from text every CPython install carries (`pydoc_data.topics` and
the standard library's source) by `python -m sweep.tiny.build`; the committed artefacts live in
`ASSET_DIR`: `lm/`, `heldout.txt`, `heldout_tokens.safetensors`, `manifest.json` and one
SAE-Lens directory per (family, layer) at `sae/<family>/layer<L>/` (hook
`blocks.<L>.hook_resid_post`; `sweep.base.paths.tiny_sae_dir`).
"""

from pathlib import Path

from sweep.base.paths import TINY_ASSETS

ASSET_DIR: Path = TINY_ASSETS
