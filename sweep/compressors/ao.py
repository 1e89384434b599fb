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

from typing import Any

import torch
from torch import nn
from transformers import TorchAoConfig
from transformers.quantizers.auto import AutoHfQuantizer

from sweep.compressors.registry import COMPRESSORS, divides, library, selected_linears
from sweep.config.compression import METHODS, TorchAOConfig


def ao_config(cfg: TorchAOConfig) -> Any:
    """torchao's config (an AOBaseConfig) of a method: symmetric scales, per output channel
    unless grouped."""
    name, group_size = cfg.name, getattr(cfg, "group_size", None)
    q = library(name, "torchao.quantization")
    group = q.PerGroup(group_size) if group_size else None
    if name == "ao_int8wo":
        return q.Int8WeightOnlyConfig(granularity=group or q.PerRow(), set_inductor_config=False)
    if name == "ao_w8a8":  # int8 weights per channel, int8 activations per token (dynamic)
        return q.Int8DynamicActivationInt8WeightConfig(set_inductor_config=False)
    if name == "ao_intxwo":
        dtype = getattr(torch, f"int{cfg.bits}")
        return q.IntxWeightOnlyConfig(weight_dtype=dtype, granularity=group or q.PerAxis(0))
    return q.Float8WeightOnlyConfig(set_inductor_config=False)  # e4m3, per output channel


def tag_as_loaded(model: nn.Module, config: Any, targets: set[str]) -> None:
    """Give `model` the quantization config and quantizer TorchAoConfig loading would, with every
    other nn.Linear (the unembedding…) as a module not to convert."""
    keep = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and n not in targets]
    quant = TorchAoConfig(config, modules_to_not_convert=keep)
    model.config.quantization_config = quant
    model.hf_quantizer = AutoHfQuantizer.from_config(quant, pre_quantized=False)


def apply_ao(model: nn.Module, cfg: TorchAOConfig, _calibration) -> None:
    """quantize_ with the method's torchao config over the target layers, in place."""
    layers = selected_linears(model, cfg)
    group = getattr(cfg, "group_size", None)
    if group:
        divides(layers, group, lambda layer: layer.in_features)
    names = {n for n, _ in layers}
    config = ao_config(cfg)
    library(cfg.name, "torchao.quantization").quantize_(
        model, config, filter_fn=lambda _m, fqn: fqn in names
    )
    tag_as_loaded(model, config, names)


for _name in METHODS.names():
    if issubclass(METHODS.get(_name), TorchAOConfig):
        COMPRESSORS.register(_name)(apply_ao)
