"""HQQ (half-quadratic quantization, mobiusml/hqq): asymmetric with a per-group zero point.

Quantizes every target weight with HQQ's own quantizer and writes HQQ's own dequantization of it
back into the nn.Linear (same dtype and device): the measured model is the fake-quantized float
model, as for RTN. The library is imported on first use, so qfeat imports without it.
"""

from typing import Any

import torch

from sweep.compressors.registry import COMPRESSORS, Layers, divides, library, weight_method
from sweep.config.compression import HQQConfig


def hqq_params(cfg: HQQConfig) -> dict[str, Any]:
    """HQQ's weight_quant_params from its own BaseQuantizeConfig, with qfeat's overrides."""
    quantize = library("hqq", "hqq.core.quantize")
    config = quantize.BaseQuantizeConfig(nbits=cfg.bits, group_size=cfg.group_size, axis=cfg.axis)
    params = dict(config["weight_quant_params"])
    params["optimize"] = bool(cfg.optimize)
    return params


def _quantizer():
    return library("hqq", "hqq.core.quantize").Quantizer


def hqq_quantize(weight: torch.Tensor, params: dict[str, Any]) -> tuple[torch.Tensor, dict]:
    """HQQ's quantized integer tensor and meta of one weight, dequantizing in float32.

    Bit-packing is lossless storage, so it is skipped: HQQ 0.2.8's 3-bit unpacking fails when
    group_size is null, and the unpacked codes dequantize to the same values.
    """
    quantizer = _quantizer()
    w_q, meta = quantizer.quantize(
        weight.detach(),
        device=weight.device,
        compute_dtype=torch.float32,
        bitpack=False,
        **params,
    )
    meta["compute_dtype"] = torch.float32  # as HQQLinear sets it; float32 avoids fp16 rounding
    return w_q, meta


def hqq_dequantize(w_q: torch.Tensor, meta: dict) -> torch.Tensor:
    """HQQ's own dequantization: unpack, (q − zero) · scale, reshape to the weight's shape."""
    return _quantizer().dequantize(w_q, meta)


def hqq_layers(layers: Layers, cfg: HQQConfig) -> None:
    """HQQ fake quantization of every target weight (biases stay FP)."""
    params = hqq_params(cfg)
    if params["group_size"] is not None:
        divides(layers, params["group_size"], lambda layer: layer.weight.numel())
    for _, layer in layers:
        weight = layer.weight
        weight.copy_(hqq_dequantize(*hqq_quantize(weight, params)).to(weight.dtype))


COMPRESSORS.register("hqq")(weight_method(hqq_layers))
