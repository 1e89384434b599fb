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
from sweep.config.compression import TARGETS, CompressionConfig, MixedConfig, TargetedConfig

Layers = list[tuple[str, nn.Linear]]
# Applies a method in place: (model, its config, calibration tokens or None).
Apply = Callable[[nn.Module, CompressionConfig, torch.Tensor | None], None]

COMPRESSORS: Registry[Apply] = Registry("compression")

# Module-name patterns of the target groups, across HF architectures (GPT-NeoX, Gemma, Llama…).
TARGET_PATTERNS = {
    "attention": re.compile(r"\.(attention|self_attn|attn)\."),
    "mlp": re.compile(r"\.mlp\."),
}
# Module-name patterns of each module kind (GPT-NeoX; Llama, Gemma, Mistral, Qwen; Phi; GPT-J).
KIND_PATTERNS = {
    "attn_qkv": re.compile(
        r"\.(attention\.query_key_value|(self_attn|attn)\.(q_proj|k_proj|v_proj|qkv_proj))$"
    ),
    "attn_out": re.compile(r"\.(attention\.dense|(self_attn|attn)\.(o_proj|out_proj|dense))$"),
    "mlp_in": re.compile(r"\.mlp\.(dense_h_to_4h|gate_proj|up_proj|gate_up_proj|fc1|fc_in)$"),
    "mlp_out": re.compile(r"\.mlp\.(dense_4h_to_h|down_proj|fc2|fc_out)$"),
}
BLOCK_INDEX = re.compile(r"\.(layers|h|blocks)\.(\d+)\.")


def library(method: str, module: str):
    """Import `module` of a method's library, or fail with the pip line that provides it."""
    return libraries.load(module, f"compression={method}")


def module_kind(name: str) -> str | None:
    """The module kind (KINDS) of a linear layer's name, None if it is none of them."""
    return next((k for k, p in KIND_PATTERNS.items() if p.search(f".{name}")), None)


def block_index(name: str) -> int | None:
    """The index of the transformer block a module belongs to (None outside the blocks)."""
    found = BLOCK_INDEX.search(f".{name}.")
    return int(found.group(2)) if found else None


def _matches(name: str, target: str) -> bool:
    if target in TARGET_PATTERNS:
        return bool(TARGET_PATTERNS[target].search(f".{name}."))
    return bool(KIND_PATTERNS[target].search(f".{name}"))


def target_linears(model: nn.Module, targets: list[str], blocks: list[int] | None = None) -> Layers:
    """The nn.Linear layers of the requested groups or kinds in the requested blocks (None:
    every block); the unembedding is never included. A kind or block that selects nothing is
    an error naming it, before any weight changes."""
    unknown = set(targets) - set(TARGET_PATTERNS) - set(KIND_PATTERNS)
    if unknown:
        valid = [*TARGET_PATTERNS, *KIND_PATTERNS]
        raise QfeatError(f"unknown compression targets {sorted(unknown)}; use {valid}")
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    linears = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and module is not output
    ]
    chosen = set(blocks) if blocks is not None else None
    found = [
        (name, module)
        for name, module in linears
        if any(_matches(name, t) for t in targets)
        and (chosen is None or block_index(name) in chosen)
    ]
    present = sorted({b for n, _ in linears if (b := block_index(n)) is not None})
    missing_blocks = sorted((chosen or set()) - set(present))
    if missing_blocks:
        span = f"blocks {present[0]}..{present[-1]}" if present else "no numbered blocks"
        raise QfeatError(f"compression.blocks {missing_blocks} select nothing: model has {span}")
    for kind in (t for t in targets if t in KIND_PATTERNS):
        if not any(_matches(n, kind) for n, _ in found):
            raise QfeatError(
                f"compression.targets: {kind} matches no linear layer of this model "
                f"(model_type {getattr(getattr(model, 'config', None), 'model_type', '?')})"
            )
    if not found:
        raise QfeatError(f"no linear layers matched compression targets {list(targets)}")
    return found


def selected_linears(model: nn.Module, cfg: CompressionConfig) -> Layers:
    """The layers a method's config selects (every part's for a mixed config; none for a
    method without targets)."""
    if isinstance(cfg, TargetedConfig):
        return target_linears(model, list(cfg.targets), cfg.blocks)
    if isinstance(cfg, MixedConfig):
        return [layer for part in cfg.part_configs() for layer in selected_linears(model, part)]
    return []


def bits_per_weight(model: nn.Module, cfg: CompressionConfig) -> float | None:
    """Mean bits per weight of the block linear layers once `cfg` quantizes them (integer bits
    only, scales and zero points left out; a layer it leaves alone counts at the model's
    width); None for a method without a bit-width (pruning, none)."""
    parts = cfg.part_configs() if isinstance(cfg, MixedConfig) else [cfg]
    if any(p.weight_bits is None for p in parts):
        return None
    bits = {name: p.weight_bits for p in parts for name, _ in selected_linears(model, p)}
    layers = target_linears(model, list(TARGETS))
    total = sum(layer.weight.numel() for _, layer in layers)
    return (
        sum(
            layer.weight.numel() * bits.get(name, 8 * layer.weight.element_size())
            for name, layer in layers
        )
        / total
    )


def compress_model(
    model: nn.Module, cfg: CompressionConfig, calibration: torch.Tensor | None = None
) -> int:
    """Compress `model`'s target layers in place with the method `cfg` configures.

    Returns the number of weight matrices targeted. Methods that quantize activations replace
    the target modules by their library's modules, so the model then runs as deployed.
    """
    apply = COMPRESSORS.get(cfg.name)
    if cfg.needs_calibration and calibration is None:
        raise QfeatError(f"compression={cfg.name} needs calibration tokens")
    n = len(selected_linears(model, cfg))
    apply(model, cfg, calibration)
    return n


def weight_method(fn: Callable[[Layers, CompressionConfig], None]) -> Apply:
    """Adapt a transform of the target nn.Linear weights into a method's `apply`."""

    def apply(model: nn.Module, cfg: CompressionConfig, _calibration) -> None:
        layers = selected_linears(model, cfg)
        with torch.no_grad():
            fn(layers, cfg)

    return apply


def divides(layers: Layers, group_size: int, size: Callable[[nn.Linear], int]) -> None:
    """Fail naming the first layer whose `size` the group size does not divide."""
    bad = [name for name, layer in layers if group_size < 1 or size(layer) % group_size]
    if bad:
        raise QfeatError(f"compression.group_size={group_size} does not divide {bad[0]}")


def snapshot_targets(model: nn.Module, cfg: CompressionConfig) -> dict[str, torch.Tensor]:
    """CPU copies of the weights `cfg` selects, to restore FP values between compressions."""
    return {
        name: layer.weight.detach().to("cpu", copy=True)
        for name, layer in selected_linears(model, cfg)
    }


def restore_targets(model: nn.Module, snapshot: dict[str, torch.Tensor]) -> None:
    """Write snapshot weights back in place (no second model copy on the device)."""
    modules = dict(model.named_modules())
    with torch.no_grad():
        for name, weight in snapshot.items():
            modules[name].weight.copy_(weight)
