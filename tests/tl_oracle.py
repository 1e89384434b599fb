"""TransformerLens' own conversion of an HF model: the oracle the HF-hook measurement is tested on.

qfeat measures the HF model itself (sweep/hooked.py); this builds the HookedTransformer that
TransformerLens would, from the same in-memory HF model, so tests can compare activations and
losses of the two paths.
"""

import logging
from functools import lru_cache

import numpy as np
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig
from transformer_lens import loading_from_pretrained as tl_loading
from transformers import AutoTokenizer, PreTrainedModel

from sweep.inputs.hub import hub_cache_dir

log = logging.getLogger(__name__)


def checkpoint_shape(hf_config) -> dict:
    """The TransformerLens config fields that the HF checkpoint's own config determines."""
    n_heads = hf_config.num_attention_heads
    shape = {
        "d_model": hf_config.hidden_size,
        "n_layers": hf_config.num_hidden_layers,
        "n_heads": n_heads,
        "d_head": getattr(hf_config, "head_dim", None) or hf_config.hidden_size // n_heads,
        "d_mlp": hf_config.intermediate_size,
        "d_vocab": hf_config.vocab_size,
        "d_vocab_out": hf_config.vocab_size,
    }
    optional = {
        "n_key_value_heads": "num_key_value_heads",
        "window_size": "sliding_window",
        "n_ctx": "max_position_embeddings",
        "attn_scores_soft_cap": "attn_logit_softcapping",
        "output_logits_soft_cap": "final_logit_softcapping",
    }
    for tl_name, hf_name in optional.items():
        if getattr(hf_config, hf_name, None) is not None:
            shape[tl_name] = getattr(hf_config, hf_name)
    layer_types = getattr(hf_config, "layer_types", None)
    if layer_types:
        shape["attn_types"] = ["local" if "sliding" in t else "global" for t in layer_types]
    return shape


def reconcile_config(cfg: HookedTransformerConfig, hf_config) -> HookedTransformerConfig:
    """TL's config with the checkpoint's sizes where TL's built-in table (keyed by name) differs.

    TransformerLens hard-codes some architectures by repo id (Gemma-2 among them), so a checkpoint
    under an official name but of another size would get the wrong shapes. For the real
    checkpoints nothing differs and the config is returned unchanged.
    """
    current = dict(cfg.to_dict())
    shape = checkpoint_shape(hf_config)
    for key in ("n_key_value_heads", "attn_types", "window_size"):
        if current.get(key) is None:  # TL does not use the field for this architecture
            shape.pop(key, None)
    changed = {k: v for k, v in shape.items() if current.get(k) != v}
    if not changed:
        return cfg
    log.warning("TransformerLens' built-in config differs from the checkpoint's; using %s", changed)
    if "d_head" in changed:
        old = current["d_head"]
        if current.get("rotary_dim") == old:
            changed["rotary_dim"] = changed["d_head"]
        if current.get("use_attn_scale") and np.isclose(current.get("attn_scale", -1), old**0.5):
            changed["attn_scale"] = -1.0  # recomputed as sqrt(d_head)
    return HookedTransformerConfig.from_dict({**current, **changed})


@lru_cache(maxsize=4)
def _cached_tokenizer(path: str, cache: str):
    """The tokenizer TransformerLens attaches, loaded once per (repo, hub cache), not per model."""
    return AutoTokenizer.from_pretrained(path)


def to_hooked(
    hf_model: PreTrainedModel, path: str, processing: dict, device: torch.device
) -> HookedTransformer:
    """A HookedTransformer holding a converted copy of `hf_model`'s current weights.

    Uses TransformerLens' own config and weight converters with the in-memory model passed in,
    so a compressed HF model is converted exactly as it is. Mirrors the guards that
    HookedTransformer.from_pretrained applies before processing (e.g. no unembedding centring
    under a logit softcap, which is not shift-invariant).
    """
    dtype = next(hf_model.parameters()).dtype
    cfg = tl_loading.get_pretrained_model_config(
        path,
        hf_cfg=hf_model.config.to_dict(),
        fold_ln=processing["fold_ln"],
        device=str(device),
        dtype=dtype,
    )
    cfg = reconcile_config(cfg, hf_model.config)
    processing = dict(processing)
    softcap = cfg.output_logits_soft_cap
    if processing["center_unembed"] and softcap is not None and softcap > 0:
        processing["center_unembed"] = False
    state_dict = tl_loading.get_pretrained_state_dict(path, cfg, hf_model, dtype=dtype)
    model = HookedTransformer(cfg, _cached_tokenizer(path, hub_cache_dir()), move_to_device=False)
    model.load_and_process_state_dict(state_dict, **processing)
    del state_dict
    return model.to(device, print_details=False).eval()
