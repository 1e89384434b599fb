"""Load a causal LM in HF format and hand it to TransformerLens for hooked forward passes."""

import logging
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled
from omegaconf import DictConfig
from transformer_lens import HookedTransformer, HookedTransformerConfig
from transformer_lens import loading_from_pretrained as tl_loading
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel
from transformers.utils import logging as hf_logging

from sweep.constants import TINY_ASSETS
from sweep.errors import QfeatError
from sweep.registry import Registry

log = logging.getLogger(__name__)
hf_logging.disable_progress_bar()  # per-tensor "Loading weights" bars: noise, a job logs its stages

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
MODELS.register("pythia-70m")(ModelSpec(default_path="EleutherAI/pythia-70m-deduped"))
MODELS.register("gemma-2-2b")(ModelSpec(default_path="google/gemma-2-2b"))
MODELS.register("hf")(ModelSpec(default_path=""))  # any checkpoint: model.path=<HF id or dir>


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when available, else CPU; a device this machine lacks is one line."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise QfeatError(
            f"runtime.device={name!r} is not a device; use auto, cpu or cuda[:N]"
        ) from err
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise QfeatError(
                f"runtime.device={name!r} but CUDA is not available here; use runtime.device=cpu"
            )
        if device.index is not None and device.index >= count:
            raise QfeatError(f"runtime.device={name!r} but this machine has {count} CUDA devices")
    elif device.type not in ("cpu", "mps"):
        raise QfeatError(f"runtime.device={name!r} is not supported; use auto, cpu or cuda[:N]")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise QfeatError(f"runtime.device={name!r} but MPS is not available here")
    return device


def model_path(cfg: DictConfig) -> str:
    """The HF repo id or directory of `cfg.model`."""
    path = cfg.path or MODELS.get(cfg.name).default_path
    if not path:
        raise QfeatError(f"model.name={cfg.name} needs model.path (an HF repo id or directory)")
    return path


def local_model_dir(cfg: DictConfig) -> Path | None:
    """The model's checkpoint directory when it is local (None for an HF hub id)."""
    path = Path(model_path(cfg))
    return path if path.is_dir() else None


def _not_cached(err: BaseException) -> bool:
    """Whether an exception (or one it wraps) means 'not in the local cache and hub unreachable'."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, LocalEntryNotFoundError | OfflineModeIsEnabled):
            return True
        text = str(seen)
        if (
            "couldn't connect to" in text and "cached files" in text
        ) or "OfflineModeIsEnabled" in text:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def hub_cache_dir() -> str:
    """Where huggingface_hub looks for cached repos (HF_HUB_CACHE, else HF_HOME/hub)."""
    from huggingface_hub import constants

    return os.environ.get("HF_HUB_CACHE") or constants.HF_HUB_CACHE


def load_error(what: str, repo: str, err: BaseException, download: str = "") -> QfeatError:
    """One sentence for a failed load: the offline/cache advice when that is the cause."""
    if _not_cached(err):
        offline = "HF_HUB_OFFLINE=1 is set" if os.environ.get("HF_HUB_OFFLINE") else "no hub access"
        return QfeatError(
            f"{what} {repo!r} is not in the Hugging Face cache {hub_cache_dir()!r} and cannot be "
            f"downloaded ({offline}): on a machine with hub access run "
            f"`hf download {repo}{download}` with the same HF_HOME (or HF_HUB_CACHE), "
            "then point HF_HOME at that cache here"
        )
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return QfeatError(f"cannot load {what} {repo!r}: {first}")


def load_tokenizer(cfg: DictConfig):
    """The model's tokenizer (cheap; loaded before the weights so data errors come first)."""
    path = model_path(cfg)
    try:
        return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as err:
        raise load_error(f"the tokenizer of model {cfg.name!r}:", path, err) from err


def effective_dtype(name: str, device: torch.device) -> torch.dtype:
    """`model.dtype` on GPU; float32 on CPU, where half-precision matmuls are slow and inexact."""
    dtype = DTYPES[name]
    if device.type == "cpu" and dtype != torch.float32:
        log.info("model.dtype=%s on CPU: loading in float32 instead", name)
        return torch.float32
    return dtype


def load_hf_model(cfg: DictConfig, device: torch.device) -> PreTrainedModel:
    """The HF model in eval mode, on `device`, in `cfg.dtype` (float32 on CPU)."""
    path = model_path(cfg)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=effective_dtype(cfg.dtype, device))
    except (OSError, ValueError) as err:
        raise load_error(f"model {cfg.name!r}:", path, err) from err
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
