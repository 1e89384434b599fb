"""The embedded model compressed by a library's method, cached per (method, bits, group size):
what the library oracle tests (llm-compressor, torchao, bitsandbytes) inspect."""

import copy
from functools import cache

import torch
from omegaconf import DictConfig

from conftest import SMALL, compose_config
from sweep.compressors import compress_model, target_linears
from sweep.config.validate import method_config
from sweep.inputs.data import build_token_sets
from sweep.inputs.models import load_hf_model, load_tokenizer


def method_cfg(name: str, *overrides: str) -> DictConfig:
    """The shipped config of a job of `name`, shrunk."""
    return compose_config([*SMALL, f"compression={name}", *overrides])


@cache
def fp_and_calibration() -> tuple[torch.nn.Module, torch.Tensor]:
    """The tiny FP model and 8 calibration sequences (disjoint from the measured tokens)."""
    cfg = method_cfg("rtn")
    _, calibration = build_token_sets(cfg.data, load_tokenizer(cfg.model), 8)
    return load_hf_model(cfg.model, torch.device("cpu")), calibration


@cache
def compressed(name: str, bits: int, group_size: int | None = None) -> torch.nn.Module:
    """A copy of tiny compressed by `name` (cached: calibration takes seconds)."""
    fp, calibration = fp_and_calibration()
    model = copy.deepcopy(fp)
    group = [] if group_size is None else [f"compression.group_size={group_size}"]
    cfg = method_config(method_cfg(name, f"bits={bits}", "sparsity=0.5", *group))
    assert compress_model(model, cfg, calibration) == 16
    return model


def modules(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """The target layers (or the library modules that replaced them) by name."""
    return {name: layer for name, layer in target_linears(model, ["attention", "mlp"])}


def fp_weights() -> dict[str, torch.Tensor]:
    """The FP target weights of tiny."""
    return {n: m.weight.detach() for n, m in modules(fp_and_calibration()[0]).items()}
