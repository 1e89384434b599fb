"""Load a causal LM in HF format, and the TransformerLens processing its SAEs expect."""

import logging

import torch
from omegaconf import DictConfig
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel
from transformers.utils import logging as hf_logging

from sweep.base import libraries
from sweep.base.errors import QfeatError
from sweep.config.locations import model_path
from sweep.inputs.hub import load_error

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


def load_tokenizer(cfg: DictConfig):
    """The model's tokenizer (cheap; loaded before the weights so data errors come first)."""
    path = model_path(cfg)
    try:
        return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as err:
        raise load_error(f"the tokenizer of model {cfg.name!r}:", path, err) from err


def effective_dtype(name: str, device: torch.device, half_on_cpu: bool = False) -> torch.dtype:
    """`model.dtype` on GPU; float32 on CPU, where half-precision matmuls are slow and inexact on
    many CPUs, unless `half_on_cpu` (runtime.half_on_cpu: the model's dtype there too)."""
    dtype = DTYPES[name]
    if device.type == "cpu" and dtype != torch.float32 and not half_on_cpu:
        log.info("model.dtype=%s on CPU: loading in float32 instead", name)
        return torch.float32
    return dtype


def attention_kwargs(config) -> dict:
    """Eager attention where the model soft-caps attention logits (Gemma-2).

    transformers' default SDPA kernel skips the soft cap, so the model would not compute what it
    was trained with (or what TransformerLens, and so the SAE, saw): 1e-3 relative error in the
    residual stream of a Gemma-2 block, 5e-6 absolute with eager attention.
    """
    softcap = getattr(config, "attn_logit_softcapping", None)
    return {"attn_implementation": "eager"} if softcap else {}


# Quantized checkpoint formats a model may be saved in and qfeat loads as transformers does
# (config.json quantization_config.quant_method), each with the module transformers needs to
# load it (sweep.base.libraries has its pip line).
CHECKPOINT_FORMATS = {
    "bitsandbytes": "bitsandbytes",
    "compressed-tensors": "compressed_tensors",
    "torchao": "torchao",
}


def checkpoint_format(path: str) -> str | None:
    """The quantization format of a saved checkpoint (None: plain weights), if qfeat loads it."""
    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as err:
        raise load_error("the config of checkpoint", path, err) from err
    quant = getattr(config, "quantization_config", None)
    if quant is None:
        return None
    method = quant.get("quant_method") if isinstance(quant, dict) else quant.quant_method
    method = str(getattr(method, "value", method))
    if method not in CHECKPOINT_FORMATS:
        raise QfeatError(
            f"checkpoint {path!r} is quantized as {method!r}; qfeat loads plain weights and "
            f"{', '.join(CHECKPOINT_FORMATS)} checkpoints"
        )
    libraries.require(CHECKPOINT_FORMATS[method], f"checkpoint {path!r} quantized as {method!r}")
    return method


def load_hf_model(
    cfg: DictConfig, device: torch.device, half_on_cpu: bool = False
) -> PreTrainedModel:
    """The HF model in eval mode, on `device`, in `cfg.dtype` (float32 on CPU unless
    `half_on_cpu`).

    A checkpoint saved quantized (bitsandbytes, compressed-tensors, torchao) is loaded as
    transformers loads it, with its library's modules, so it runs as deployed.
    """
    path = model_path(cfg)
    quantized = checkpoint_format(path) is not None
    try:
        config = AutoConfig.from_pretrained(path)
        placement = {"device_map": str(device)} if quantized else {}
        model = AutoModelForCausalLM.from_pretrained(
            path,
            dtype=effective_dtype(cfg.dtype, device, half_on_cpu),
            **attention_kwargs(config),
            **placement,
        )
    except (OSError, ValueError, RuntimeError) as err:  # RuntimeError: weights of other shapes
        raise load_error(f"model {cfg.name!r}:", path, err) from err
    return (model if quantized else model.to(device)).eval()


def tl_processing(sae_kwargs: dict | None) -> dict:
    """TransformerLens weight processing matching how the SAE's activations were recorded."""
    processing = dict(TL_PROCESSING_DEFAULTS)
    for key, value in (sae_kwargs or {}).items():
        if key in processing:
            processing[key] = bool(value)
        else:
            log.info("ignoring SAE model_from_pretrained_kwargs[%r]=%r", key, value)
    return processing
