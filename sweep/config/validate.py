"""The checks a job's config passes before any heavy import or work: each bad value is one line."""

import json
import math
import os
import re
from dataclasses import fields

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from sweep.base import libraries
from sweep.base.errors import QfeatError, one_line
from sweep.config.compression import (
    GGUF_ARCHITECTURES,
    METHODS,
    CompressionConfig,
    GGUFConfig,
    MixedConfig,
)
from sweep.config.locations import (
    DATA_SOURCES,
    MODEL_PATHS,
    SAE_NAMES,
    check_name,
    check_tiny_sae_layers,
    local_model_dir,
    model_depth,
    model_identity,
)

WANDB_MODES = ("online", "offline", "disabled")
DTYPES = ("float32", "float16", "bfloat16")
DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
# Bounds the per-block statistics' memory, O(n_blocks × d_sae) per SAE and variant.
MAX_BLOCKS = 1024


def wandb_mode(cfg: DictConfig) -> str:
    """WANDB_MODE from the environment wins over `wandb.mode`, as wandb users expect."""
    mode = os.environ.get("WANDB_MODE") or cfg.wandb.mode
    if mode == "dryrun":  # wandb's old name for offline
        mode = "offline"
    if mode not in WANDB_MODES:
        source = "WANDB_MODE" if os.environ.get("WANDB_MODE") else "wandb.mode"
        raise QfeatError(f"{source}={mode!r}; use {', '.join(WANDB_MODES)}")
    return mode


def _check_options(node: DictConfig, method: CompressionConfig, where: str) -> None:
    """Refuse keys a method does not have (`+compression.x=…` gets past Hydra's struct mode)."""
    known = {f.name for f in fields(method)}
    extra = sorted(set(node.keys()) - known)
    if extra:
        raise QfeatError(
            f"compression={method.name} has no option {', '.join(extra)} ({where}); "
            f"its options: {', '.join(sorted(known - {'name'}))}"
        )
    for f in fields(method):
        child = getattr(method, f.name)
        if isinstance(child, CompressionConfig):
            _check_options(node[f.name], child, f"{where}.{f.name}")


def method_config(cfg: DictConfig) -> CompressionConfig:
    """The job's compression method as its typed config, checked (one line when it is bad)."""
    node = cfg.compression
    name = node.get("name") if isinstance(node, DictConfig) else None
    check_name("compression", str(name), METHODS.names())
    try:
        method = OmegaConf.to_object(node)
    except OmegaConfBaseException as err:
        raise QfeatError(f"bad compression config: {one_line(str(err))}") from err
    if not isinstance(method, METHODS.get(name)):
        raise QfeatError(f"compression.name={name} but the options are {type(method).__name__}'s")
    _check_options(node, method, "compression")
    for part in (method, getattr(method, "baseline", None), getattr(method, "match", None)):
        for module in getattr(part, "requires", ()):
            libraries.require(module, f"compression={part.name}")
    method.check()
    return method


def check_gguf_model(cfg: DictConfig) -> None:
    """compression=gguf on a local model qfeat cannot read GGUF weights back into is refused
    from its config.json (a hub model is checked when it loads)."""
    local = local_model_dir(cfg.model)
    config = local / "config.json" if local is not None else None
    if config is None or not config.is_file():
        return
    model_type = json.loads(config.read_text()).get("model_type")
    if model_type not in GGUF_ARCHITECTURES:
        raise QfeatError(
            f"compression=gguf reads GGUF weights back into {', '.join(GGUF_ARCHITECTURES)} "
            f"models; model {cfg.model.name!r} is {model_type!r}"
        )


def check_blocks(method: CompressionConfig, depth: int | None) -> None:
    """Every block index the method names exists in a local model (hub models: at load)."""
    beyond = sorted(b for b in method.selected_blocks() if depth is not None and b >= depth)
    if beyond:
        raise QfeatError(
            f"compression selects blocks {beyond}, but the model has {depth} (0..{depth - 1})"
        )


def check_plan_model(cfg: DictConfig, method: MixedConfig) -> None:
    """A plan (compression=mixed with for_model) runs only on the model it was made for."""
    if method.for_model is None:
        return
    model = model_identity(cfg.model)
    if method.for_model != model:
        raise QfeatError(
            f"compression.for_model={_short(method.for_model)} is a plan for another model; "
            f"model {cfg.model.name!r} is {_short(model)} (make its own plan with qfeat-plan)"
        )


def _short(name: str) -> str:
    """A content digest's first 16 characters; a hub id whole."""
    return f"{name[:16]}…" if len(name) == 64 else name


def validate(cfg: DictConfig) -> CompressionConfig:
    """Fail fast with one line on values the schema's types cannot catch; returns the method."""
    check_name("model", cfg.model.name, list(MODEL_PATHS))
    check_name("sae", cfg.sae.name, SAE_NAMES)
    check_tiny_sae_layers(cfg.sae)
    check_name("data source", cfg.data.source, DATA_SOURCES)
    method = method_config(cfg)
    if isinstance(method, GGUFConfig):
        check_gguf_model(cfg)
    if isinstance(method, MixedConfig):
        check_plan_model(cfg, method)
    check_blocks(method, model_depth(cfg.model))
    s = cfg.survival
    if not 0.0 < s.blurred < s.survived <= 1.0:
        raise QfeatError(
            f"need 0 < survival.blurred < survival.survived <= 1; got {s.blurred}, {s.survived}"
        )
    if s.min_active_tokens < 1:
        raise QfeatError("survival.min_active_tokens must be >= 1")
    boot = s.bootstrap
    if not (2 <= boot.n_blocks <= MAX_BLOCKS and boot.n_boot >= 0 and 0 < boot.level < 1):
        raise QfeatError(
            f"need 2 <= survival.bootstrap.n_blocks <= {MAX_BLOCKS}, n_boot >= 0 (0: off) and "
            f"0 < level < 1; got {boot.n_blocks}, {boot.n_boot}, {boot.level}"
        )
    if cfg.data.seq_len < 2 or cfg.data.n_sequences < 1:
        raise QfeatError("data.seq_len must be >= 2 and data.n_sequences >= 1")
    measured = cfg.data.n_sequences * (cfg.data.seq_len - int(s.exclude_first_position))
    if measured < s.min_active_tokens:
        raise QfeatError(
            f"token set too small: {measured} measured tokens < survival.min_active_tokens="
            f"{s.min_active_tokens}; no feature could count as active"
        )
    stride = cfg.eval.sliding_window_stride
    if stride is not None and not 1 <= stride <= cfg.data.seq_len - 1:
        raise QfeatError(f"eval.sliding_window_stride={stride} must be in 1..data.seq_len-1")
    if cfg.eval.kl_top_k < 1:
        raise QfeatError("eval.kl_top_k must be >= 1")
    if cfg.eval.contexts_k < 0 or cfg.fidelity.max_features < 0:
        raise QfeatError("eval.contexts_k and fidelity.max_features must be >= 0 (0: off)")
    if cfg.eval.sae_fit_sequences < 0 or cfg.fidelity.n_sequences < 1:
        raise QfeatError("need eval.sae_fit_sequences >= 0 (0: off) and fidelity.n_sequences >= 1")
    if not math.isfinite(cfg.fidelity.alpha):
        raise QfeatError(f"fidelity.alpha={cfg.fidelity.alpha} must be finite")
    if any(f < 0 for f in cfg.survival.watch):
        raise QfeatError(f"survival.watch={list(cfg.survival.watch)} holds a negative feature id")
    wandb_mode(cfg)
    if cfg.runtime.batch_size < 1:
        raise QfeatError("runtime.batch_size must be >= 1")
    if cfg.model.dtype not in DTYPES:
        raise QfeatError(f"model.dtype={cfg.model.dtype!r}; use {', '.join(DTYPES)}")
    if not DEVICE.fullmatch(cfg.runtime.device):
        raise QfeatError(
            f"runtime.device={cfg.runtime.device!r} is not a device; use auto, cpu or cuda[:N]"
        )
    return method
