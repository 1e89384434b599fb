"""Compressor registry and the selection of which weight matrices a compressor touches."""

import re
from collections.abc import Callable

import torch
from omegaconf import DictConfig
from torch import nn

from sweep.errors import QfeatError
from sweep.prune import prune_
from sweep.quantize import rtn
from sweep.registry import Registry

# Compressor: (target linear layers, compression config, bits, sparsity) -> None, in place.
Layers = list[tuple[str, nn.Linear]]
Compressor = Callable[[Layers, DictConfig, int, float], None]
COMPRESSORS: Registry[Compressor] = Registry("compression")

# Module-name patterns of the target groups, across HF architectures (GPT-NeoX, Gemma, Llama…).
TARGET_PATTERNS = {
    "attention": re.compile(r"\.(attention|self_attn|attn)\."),
    "mlp": re.compile(r"\.mlp\."),
}


def target_linears(model: nn.Module, targets: list[str]) -> list[tuple[str, nn.Linear]]:
    """The nn.Linear layers of the requested groups; the unembedding is never included."""
    unknown = set(targets) - set(TARGET_PATTERNS)
    if unknown:
        valid = list(TARGET_PATTERNS)
        raise QfeatError(f"unknown compression targets {sorted(unknown)}; use {valid}")
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    found = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear)
        and module is not output
        and any(TARGET_PATTERNS[t].search(f".{name}.") for t in targets)
    ]
    if not found:
        raise QfeatError(f"no linear layers matched compression targets {list(targets)}")
    return found


def compress_model(
    model: nn.Module, cfg: DictConfig, bits: int, sparsity: float = 0.0, method: str | None = None
) -> int:
    """Compress `model`'s target weights in place with `method` (default: cfg.name).

    Returns the number of weight matrices touched.
    """
    compressor = COMPRESSORS.get(method or cfg.name)
    layers = target_linears(model, list(cfg.targets))
    with torch.no_grad():
        compressor(layers, cfg, bits, sparsity)
    return len(layers)


def _weights(layers: Layers) -> list[torch.Tensor]:
    return [layer.weight for _, layer in layers]


@COMPRESSORS.register("none")
def no_compression(layers: Layers, cfg: DictConfig, bits: int, sparsity: float) -> None:
    """Identity: the control that every feature survives exactly."""


@COMPRESSORS.register("rtn")
def rtn_compression(layers: Layers, cfg: DictConfig, bits: int, sparsity: float) -> None:
    """Round-to-nearest quantization of every target weight (biases stay FP)."""
    if cfg.granularity == "group":
        bad = [name for name, layer in layers if layer.in_features % cfg.group_size]
        if bad:
            raise QfeatError(f"compression.group_size={cfg.group_size} does not divide {bad[0]}")
    for weight in _weights(layers):
        weight.copy_(rtn(weight, bits, cfg.granularity, cfg.group_size, cfg.symmetric))


@COMPRESSORS.register("magnitude")
@COMPRESSORS.register("magnitude_matched")
def magnitude_compression(layers: Layers, cfg: DictConfig, bits: int, sparsity: float) -> None:
    """Unstructured magnitude pruning of the target weights to `sparsity` (matrix or global).

    magnitude_matched applies the same transform at the sparsity its search found.
    """
    prune_(_weights(layers), sparsity, cfg.scope)


def snapshot_targets(model: nn.Module, cfg: DictConfig) -> dict[str, torch.Tensor]:
    """CPU copies of the target weights, to restore FP values between compressions."""
    return {
        name: layer.weight.detach().to("cpu", copy=True)
        for name, layer in target_linears(model, list(cfg.targets))
    }


def restore_targets(model: nn.Module, snapshot: dict[str, torch.Tensor]) -> None:
    """Write snapshot weights back in place (no second model copy on the device)."""
    modules = dict(model.named_modules())
    with torch.no_grad():
        for name, weight in snapshot.items():
            modules[name].weight.copy_(weight)


import sweep.ecosystem  # noqa: E402,F401  (registers hqq, quanto)
