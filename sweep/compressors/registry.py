"""The compression-method registry, its pre-flight checks, and target-weight selection.

A method is looked up by the `compression.name` of a job. It imports no method module (they
import it), so the package has no import cycles; `sweep.compressors` imports every family.
"""

import importlib
import importlib.util
import re
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

import torch
from omegaconf import DictConfig
from torch import nn

from sweep.errors import QfeatError
from sweep.registry import Registry

Layers = list[tuple[str, nn.Linear]]
# Applies a method in place: (model, compression config, bits, sparsity, calibration tokens).
Apply = Callable[[nn.Module, DictConfig, int, float, torch.Tensor | None], None]
# Extra settings check, run before any model is loaded: (compression config, bits).
Check = Callable[[DictConfig, int], None]


@dataclass(frozen=True)
class Method:
    """One compression method and what it accepts.

    bits: the bit-widths it supports (None: any in qfeat's range, or unused by a pruner).
    requires: (importable module, pip requirement) of each library it needs.
    calibrated: it needs the calibration token slice (disjoint from the measured tokens).
    prunes: it reads `sparsity`, so it can be the pruned side of magnitude_matched.
    weights_only: it only rewrites the target nn.Linear weights in place (fake quantization or
    masking), so the model keeps its modules and FP weights can be restored from a snapshot.
    """

    apply: Apply
    bits: tuple[int, ...] | None = None
    requires: tuple[tuple[str, str], ...] = ()
    calibrated: bool = False
    prunes: bool = False
    check: Check | None = None
    weights_only: bool = False


COMPRESSORS: Registry[Method] = Registry("compression")

# Module-name patterns of the target groups, across HF architectures (GPT-NeoX, Gemma, Llama…).
TARGET_PATTERNS = {
    "attention": re.compile(r"\.(attention|self_attn|attn)\."),
    "mlp": re.compile(r"\.mlp\."),
}


def library(method: str, module: str) -> ModuleType:
    """Import `module` of a method's library, or fail with the pip line that provides it."""
    requires = COMPRESSORS.get(method).requires
    pip = next((p for m, p in requires if module == m or module.startswith(f"{m}.")), module)
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise QfeatError(f"compression={method} needs `pip install {pip}` ({err})") from err


def _in_place_pruner(spec: Method) -> bool:
    """Whether a method can be the pruned side of a matched search (restored between steps)."""
    return spec.prunes and spec.weights_only


def check_method(cfg: DictConfig, bits: int, method: str | None = None) -> Method:
    """The method of `cfg` after checking its libraries, bit-width and settings (no model yet)."""
    name = method or cfg.name
    spec = COMPRESSORS.get(name)
    for module, pip in spec.requires:
        if importlib.util.find_spec(module) is None:
            raise QfeatError(f"compression={name} needs `pip install {pip}` (not installed)")
    if spec.bits is not None and bits not in spec.bits:
        raise QfeatError(
            f"compression={name} supports bits in {{{', '.join(map(str, spec.bits))}}}; "
            f"got bits={bits}"
        )
    if spec.check is not None:
        spec.check(cfg, bits)
    if method is None and cfg.get("match") and not _in_place_pruner(spec):
        pruners = [n for n in COMPRESSORS.names() if _in_place_pruner(COMPRESSORS.get(n))]
        raise QfeatError(
            f"compression.match needs an in-place pruner as compression.name ({pruners}); "
            f"got {name}"
        )
    return spec


def needs_calibration(cfg: DictConfig) -> bool:
    """Whether a job of this compression config uses the calibration slice."""
    methods = [cfg.name, *([cfg.match] if cfg.get("match") else [])]
    return bool(cfg.get("match")) or any(COMPRESSORS.get(m).calibrated for m in methods)


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
    model: nn.Module,
    cfg: DictConfig,
    bits: int,
    sparsity: float = 0.0,
    method: str | None = None,
    calibration: torch.Tensor | None = None,
) -> int:
    """Compress `model`'s target layers in place with `method` (default: cfg.name).

    Returns the number of weight matrices targeted. Methods that quantize activations replace
    the target modules by their library's modules, so the model then runs as deployed.
    """
    name = method or cfg.name
    spec = check_method(cfg, bits, name)
    if spec.calibrated and calibration is None:
        raise QfeatError(f"compression={name} needs calibration tokens")
    n = len(target_linears(model, list(cfg.targets)))
    spec.apply(model, cfg, bits, sparsity, calibration)
    return n


def weight_method(fn: Callable[[Layers, DictConfig, int, float], None]) -> Apply:
    """Adapt a transform of the target nn.Linear weights into a method's `apply`."""

    def apply(model: nn.Module, cfg: DictConfig, bits: int, sparsity: float, _calib) -> None:
        layers = target_linears(model, list(cfg.targets))
        with torch.no_grad():
            fn(layers, cfg, bits, sparsity)

    return apply


def divides(layers: Layers, group_size: int, size: Callable[[nn.Linear], int]) -> None:
    """Fail naming the first layer whose `size` the group size does not divide."""
    bad = [name for name, layer in layers if group_size < 1 or size(layer) % group_size]
    if bad:
        raise QfeatError(f"compression.group_size={group_size} does not divide {bad[0]}")


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
