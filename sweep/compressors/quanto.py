"""optimum-quanto (huggingface/optimum-quanto): QLinear's weight quantization.

Per output channel or per group; qint2/qint4 affine (MaxOptimizer), qint8 symmetric
(AbsmaxOptimizer). quanto's own dequantization is written back into the nn.Linear, so the
measured model is the fake-quantized float model, as for RTN.
"""

from typing import Any

import torch

from sweep.compressors.registry import COMPRESSORS, Layers, divides, library, weight_method
from sweep.config.compression import QuantoConfig


def quanto_qlinear(layer: torch.nn.Linear, bits: int, group_size: int | None) -> Any:
    """quanto's QLinear sharing `layer`'s weight; its default group size unless overridden."""
    quanto = library("quanto", "optimum.quanto")
    qlinear = quanto.QLinear.from_module(layer, weights=quanto.qtypes[f"qint{bits}"])
    if group_size is not None:
        qlinear.weight_group_size = group_size
    return qlinear


def quanto_quantize(layer: torch.nn.Linear, bits: int, group_size: int | None) -> Any:
    """The quantized weight (a quanto QTensor) that QLinear.freeze() would store."""
    return quanto_qlinear(layer, bits, group_size).qweight


def quanto_layers(layers: Layers, cfg: QuantoConfig) -> None:
    """optimum-quanto fake quantization of every target weight (biases stay FP)."""
    if cfg.group_size is not None:
        divides(layers, cfg.group_size, lambda layer: layer.in_features)
    for _, layer in layers:
        weight = layer.weight
        qweight = quanto_quantize(layer, cfg.bits, cfg.group_size)
        weight.copy_(qweight.dequantize().to(weight.dtype))


COMPRESSORS.register("quanto")(weight_method(quanto_layers))
