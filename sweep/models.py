"""Load a causal LM in HF format and hand it to TransformerLens for hooked forward passes."""

import logging
from dataclasses import dataclass

import torch
from omegaconf import DictConfig
from transformer_lens import HookedTransformer
from transformer_lens import loading_from_pretrained as tl_loading
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from sweep.constants import TINY_ASSETS
from sweep.errors import QfeatError
from sweep.registry import Registry

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}

# TransformerLens' from_pretrained defaults; an SAE's model_from_pretrained_kwargs override them.
TL_PROCESSING_DEFAULTS = {
    "fold_ln": True,
    "center_writing_weights": True,
    "center_unembed": True,
    "fold_value_biases": True,
    "refactor_factored_attn_matrices": False,
}


@dataclass(frozen=True)
class ModelSpec:
    """A known model: where its HF checkpoint lives unless `model.path` overrides it."""

    default_path: str


MODELS: Registry[ModelSpec] = Registry("model")
MODELS.register("tiny")(ModelSpec(default_path=str(TINY_ASSETS / "lm")))


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def model_path(cfg: DictConfig) -> str:
    """The HF repo id or directory of `cfg.model`."""
    return cfg.path or MODELS.get(cfg.name).default_path


def load_tokenizer(cfg: DictConfig):
    """The model's tokenizer (cheap; loaded before the weights so data errors come first)."""
    path = model_path(cfg)
    try:
        return AutoTokenizer.from_pretrained(path)
    except OSError as err:
        raise QfeatError(f"cannot load the tokenizer of {cfg.name!r} from {path!r}: {err}") from err


def load_hf_model(cfg: DictConfig, device: torch.device) -> PreTrainedModel:
    """The HF model in eval mode, on `device`, in `cfg.dtype`."""
    path = model_path(cfg)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=DTYPES[cfg.dtype])
    except OSError as err:
        raise QfeatError(f"cannot load model {cfg.name!r} from {path!r}: {err}") from err
    return model.to(device).eval()


def tl_processing(sae_kwargs: dict | None) -> dict:
    """TransformerLens weight processing matching how the SAE's activations were recorded."""
    processing = dict(TL_PROCESSING_DEFAULTS)
    for key, value in (sae_kwargs or {}).items():
        if key in processing:
            processing[key] = bool(value)
        else:
            log.info("ignoring SAE model_from_pretrained_kwargs[%r]=%r", key, value)
    return processing


def to_hooked(
    hf_model: PreTrainedModel, path: str, processing: dict, device: torch.device
) -> HookedTransformer:
    """A HookedTransformer holding a converted copy of `hf_model`'s current weights.

    Uses TransformerLens' own config and weight converters with the in-memory model passed in,
    so a compressed HF model is converted exactly as it is, whatever its name or size.
    """
    dtype = next(hf_model.parameters()).dtype
    cfg = tl_loading.get_pretrained_model_config(
        path,
        hf_cfg=hf_model.config.to_dict(),
        fold_ln=processing["fold_ln"],
        device=str(device),
        dtype=dtype,
    )
    state_dict = tl_loading.get_pretrained_state_dict(path, cfg, hf_model, dtype=dtype)
    model = HookedTransformer(cfg, None, move_to_device=False)
    model.load_and_process_state_dict(state_dict, **processing)
    return model.to(device, print_details=False).eval()
