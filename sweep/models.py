"""Load a causal LM in HF format, and the TransformerLens processing its SAEs expect."""

import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled
from omegaconf import DictConfig
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel
from transformers.utils import logging as hf_logging

from sweep.compressors import ao, bnb, llmc
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


def attention_kwargs(config) -> dict:
    """Eager attention where the model soft-caps attention logits (Gemma-2).

    transformers' default SDPA kernel skips the soft cap, so the model would not compute what it
    was trained with (or what TransformerLens, and so the SAE, saw): 1e-3 relative error in the
    residual stream of a Gemma-2 block, 5e-6 absolute with eager attention.
    """
    softcap = getattr(config, "attn_logit_softcapping", None)
    return {"attn_implementation": "eager"} if softcap else {}


# Quantized checkpoint formats a model may be saved in and qfeat loads as transformers does
# (config.json quantization_config.quant_method), each tested in tests/test_audit_shipped.py, with
# the module transformers needs to load it and the pip line that provides it.
CHECKPOINT_FORMATS = {
    "bitsandbytes": ("bitsandbytes", bnb.PIP),
    "compressed-tensors": ("compressed_tensors", llmc.PIP),
    "torchao": ("torchao", ao.PIP),
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
    module, pip = CHECKPOINT_FORMATS[method]
    if importlib.util.find_spec(module) is None:
        raise QfeatError(
            f"checkpoint {path!r} is quantized as {method!r}: loading it needs `pip install {pip}`"
        )
    return method


def load_hf_model(cfg: DictConfig, device: torch.device) -> PreTrainedModel:
    """The HF model in eval mode, on `device`, in `cfg.dtype` (float32 on CPU).

    A checkpoint saved quantized (bitsandbytes, compressed-tensors, torchao) is loaded as
    transformers loads it, with its library's modules, so it runs as deployed.
    """
    path = model_path(cfg)
    quantized = checkpoint_format(path) is not None
    try:
        config = AutoConfig.from_pretrained(path)
        placement = {"device_map": str(device)} if quantized else {}
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=effective_dtype(cfg.dtype, device), **attention_kwargs(config), **placement
        )
    except (OSError, ValueError) as err:
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
