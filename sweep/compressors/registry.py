"""The compression implementations by method name, and the target weights they compress.

Each method's options and checks are its config node (sweep.config.compression); here each
method name maps to the function that applies it. This module imports no method module (they
import it), so the package has no cycles; `sweep.compressors` imports every family.
"""

import re
from collections.abc import Callable

import torch
from torch import nn

from sweep.base import libraries
from sweep.base.errors import QfeatError
from sweep.base.registry import Registry
from sweep.config.compression import CompressionConfig, TargetedConfig

Layers = list[tuple[str, nn.Linear]]
# Applies a method in place: (model, its config, calibration tokens or None).
Apply = Callable[[nn.Module, CompressionConfig, torch.Tensor | None], None]

COMPRESSORS: Registry[Apply] = Registry("compression")

# Module-name patterns of the target groups, across HF architectures (GPT-NeoX, Gemma, Llama…).
TARGET_PATTERNS = {
    "attention": re.compile(r"\.(attention|self_attn|attn)\."),
    "mlp": re.compile(r"\.mlp\."),
}


def library(method: str, module: str):
    """Import `module` of a method's library, or fail with the pip line that provides it."""
    return libraries.load(module, f"compression={method}")


def target_linears(model: nn.Module, targets: list[str]) -> Layers:
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
    model: nn.Module, cfg: CompressionConfig, calibration: torch.Tensor | None = None
) -> int:
    """Compress `model`'s target layers in place with the method `cfg` configures.

    Returns the number of weight matrices targeted. Methods that quantize activations replace
    the target modules by their library's modules, so the model then runs as deployed.
    """
    apply = COMPRESSORS.get(cfg.name)
    if cfg.calibrated and calibration is None:
        raise QfeatError(f"compression={cfg.name} needs calibration tokens")
    n = len(target_linears(model, list(cfg.targets))) if isinstance(cfg, TargetedConfig) else 0
    apply(model, cfg, calibration)
    return n


def weight_method(fn: Callable[[Layers, CompressionConfig], None]) -> Apply:
    """Adapt a transform of the target nn.Linear weights into a method's `apply`."""

    def apply(model: nn.Module, cfg: CompressionConfig, _calibration) -> None:
        layers = target_linears(model, list(cfg.targets))
        with torch.no_grad():
            fn(layers, cfg)

    return apply


def divides(layers: Layers, group_size: int, size: Callable[[nn.Linear], int]) -> None:
    """Fail naming the first layer whose `size` the group size does not divide."""
    bad = [name for name, layer in layers if group_size < 1 or size(layer) % group_size]
    if bad:
        raise QfeatError(f"compression.group_size={group_size} does not divide {bad[0]}")


def snapshot_targets(model: nn.Module, targets: list[str]) -> dict[str, torch.Tensor]:
    """CPU copies of the target weights, to restore FP values between compressions."""
    return {
        name: layer.weight.detach().to("cpu", copy=True)
        for name, layer in target_linears(model, list(targets))
    }


def restore_targets(model: nn.Module, snapshot: dict[str, torch.Tensor]) -> None:
    """Write snapshot weights back in place (no second model copy on the device)."""
    modules = dict(model.named_modules())
    with torch.no_grad():
        for name, weight in snapshot.items():
            modules[name].weight.copy_(weight)
