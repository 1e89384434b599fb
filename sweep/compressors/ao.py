"""torchao (PyTorch's own quantization library): int8 and intx weight-only, W8A8, fp8 weight-only.

Each method is one torchao config applied by `torchao.quantization.quantize_` to the target
layers only, which swaps each target nn.Linear's weight for torchao's tensor subclass
(Int8Tensor, IntxUnpackedToInt8Tensor, Float8Tensor) — what transformers' TorchAoConfig does
when it loads a model — so the measured forward pass runs torchao's linear kernels: `ao_w8a8`
quantizes every input to int8 per token at run time and multiplies in int8 (int_scaled_matmul);
the weight-only methods multiply float activations by the quantized weights. None calibrates.
torchao's inductor settings are left alone: the measured pass is eager, never torch.compile'd.
The model is then tagged as TorchAoConfig leaves a model it loads, so `save_pretrained` writes a
torchao checkpoint that transformers reloads as is (`qfeat-export compression=ao_…`).
"""

from typing import TYPE_CHECKING

import torch
from omegaconf import DictConfig
from torch import nn
from transformers import TorchAoConfig
from transformers.quantizers.auto import AutoHfQuantizer

from sweep.compressors.registry import (
    COMPRESSORS,
    Apply,
    Check,
    Method,
    divides,
    library,
    target_linears,
)
from sweep.errors import QfeatError

if TYPE_CHECKING:  # torchao is imported only when a method runs
    from torchao.core.config import AOBaseConfig

PIP = "torchao==0.18.0"
INTX_BITS = (2, 3, 4, 5, 6, 7, 8)  # IntxWeightOnlyConfig's torch.int2 .. torch.int8
GROUPED = ("ao_int8wo", "ao_intxwo")  # the methods whose torchao config takes PerGroup


def group_check(name: str) -> Check:
    """The settings check of `name`: a group size only where torchao groups, and positive."""

    def check(cfg: DictConfig, bits: int) -> None:
        group = cfg.get("group_size")
        if group is not None and name not in GROUPED:
            raise QfeatError(
                f"compression={name} quantizes per output channel in torchao; set "
                f"compression.group_size=null (groups: {', '.join(GROUPED)})"
            )
        if group is not None and group < 1:
            raise QfeatError(f"compression.group_size={group} must be positive or null")

    return check


def ao_config(name: str, group_size: int | None, bits: int) -> "AOBaseConfig":
    """torchao's config of `name` (symmetric scales; per output channel unless grouped)."""
    q = library(name, "torchao.quantization")
    group = q.PerGroup(group_size) if group_size else None
    if name == "ao_int8wo":
        return q.Int8WeightOnlyConfig(granularity=group or q.PerRow(), set_inductor_config=False)
    if name == "ao_w8a8":  # int8 weights per channel, int8 activations per token (dynamic)
        return q.Int8DynamicActivationInt8WeightConfig(set_inductor_config=False)
    if name == "ao_intxwo":
        dtype = getattr(torch, f"int{bits}")
        return q.IntxWeightOnlyConfig(weight_dtype=dtype, granularity=group or q.PerAxis(0))
    return q.Float8WeightOnlyConfig(set_inductor_config=False)  # e4m3, per output channel


def tag_as_loaded(model: nn.Module, config: "AOBaseConfig", targets: set[str]) -> None:
    """Give `model` the quantization config and quantizer TorchAoConfig loading would, with every
    other nn.Linear (the unembedding…) as a module not to convert."""
    keep = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and n not in targets]
    quant = TorchAoConfig(config, modules_to_not_convert=keep)
    model.config.quantization_config = quant
    model.hf_quantizer = AutoHfQuantizer.from_config(quant, pre_quantized=False)


def apply_ao(name: str) -> Apply:
    """`apply` of one torchao method: quantize_ over the target layers, in place."""

    def apply(model: nn.Module, cfg: DictConfig, bits: int, sparsity: float, _calib) -> None:
        layers = target_linears(model, list(cfg.targets))
        group = cfg.get("group_size")
        if group:
            divides(layers, group, lambda layer: layer.in_features)
        names = {n for n, _ in layers}
        config = ao_config(name, group, bits)
        library(name, "torchao.quantization").quantize_(
            model, config, filter_fn=lambda _m, fqn: fqn in names
        )
        tag_as_loaded(model, config, names)

    return apply


REQUIRES = (("torchao", PIP),)
for _name, _bits in {
    "ao_int8wo": (8,),
    "ao_w8a8": (8,),
    "ao_intxwo": INTX_BITS,
    "ao_fp8wo": (8,),
}.items():
    COMPRESSORS.register(_name)(
        Method(apply_ao(_name), bits=_bits, requires=REQUIRES, check=group_check(_name))
    )
