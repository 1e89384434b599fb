"""Compressors backed by ecosystem quantization libraries: HQQ and optimum-quanto.

Each quantizes every target weight with the library's own quantizer and writes the library's own
dequantization of it back into the nn.Linear (same dtype and device). The measured model is then
the fake-quantized float model, exactly as for RTN, so the measurement path is unchanged.
Libraries are imported on first use, so qfeat imports without them.
"""

import importlib
from types import ModuleType
from typing import Any

import torch
from omegaconf import DictConfig

from sweep.compress import COMPRESSORS, Layers
from sweep.errors import QfeatError

HQQ_BITS = (2, 3, 4, 5, 6, 8)  # Quantizer.SUPPORTED_BITS within qfeat's 2..16 (1, 1.58 are below)
QUANTO_BITS = (2, 4, 8)  # quanto's integer weight qtypes: qint2, qint4, qint8
PIP = {"hqq": "hqq==0.2.8.post1", "quanto": "optimum-quanto==0.2.7"}


def _library(method: str, module: str) -> ModuleType:
    """Import `module`, or fail with the pip line that provides it (why: optional dependency)."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise QfeatError(f"compression={method} needs `pip install {PIP[method]}` ({err})") from err


def _check_bits(method: str, bits: int, allowed: tuple[int, ...]) -> None:
    """Reject bit-widths the library cannot quantize to, naming the ones it can."""
    if bits not in allowed:
        raise QfeatError(
            f"compression={method} supports bits in {{{', '.join(map(str, allowed))}}}; "
            f"got bits={bits}"
        )


# ---------------------------------------------------------------------------------------------
# HQQ: half-quadratic quantization (mobiusml/hqq), asymmetric with a per-group zero point.


def hqq_params(cfg: DictConfig, bits: int) -> dict[str, Any]:
    """HQQ's weight_quant_params from its own BaseQuantizeConfig, with qfeat's overrides."""
    group_size = cfg.group_size
    axis = cfg.axis
    if axis not in (0, 1):
        raise QfeatError(f"compression.axis={axis}; HQQ quantizes along axis 0 or 1")
    if group_size is not None and (group_size < 8 or group_size % 8):
        raise QfeatError(f"compression.group_size={group_size}; HQQ needs a multiple of 8 or null")
    quantize = _library("hqq", "hqq.core.quantize")
    config = quantize.BaseQuantizeConfig(nbits=bits, group_size=group_size, axis=axis)
    params = dict(config["weight_quant_params"])
    params["optimize"] = bool(cfg.optimize)
    return params


def hqq_quantize(weight: torch.Tensor, params: dict[str, Any]) -> tuple[torch.Tensor, dict]:
    """HQQ's quantized integer tensor and meta of one weight, dequantizing in float32.

    Bit-packing is lossless storage, so it is skipped: HQQ 0.2.8's 3-bit unpacking fails when
    group_size is null, and the unpacked codes dequantize to the same values.
    """
    quantizer = _library("hqq", "hqq.core.quantize").Quantizer
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
    return _library("hqq", "hqq.core.quantize").Quantizer.dequantize(w_q, meta)


@COMPRESSORS.register("hqq")
def hqq_compression(layers: Layers, cfg: DictConfig, bits: int, sparsity: float) -> None:
    """HQQ fake quantization of every target weight (biases stay FP)."""
    _check_bits("hqq", bits, HQQ_BITS)
    params = hqq_params(cfg, bits)
    group_size = params["group_size"]
    if group_size is not None:
        bad = [name for name, layer in layers if layer.weight.numel() % group_size]
        if bad:
            raise QfeatError(f"compression.group_size={group_size} does not divide {bad[0]}")
    for _, layer in layers:
        weight = layer.weight
        weight.copy_(hqq_dequantize(*hqq_quantize(weight, params)).to(weight.dtype))


# ---------------------------------------------------------------------------------------------
# optimum-quanto (huggingface/optimum-quanto): QLinear's weight quantization, per output channel
# or per group; qint2/qint4 affine (MaxOptimizer), qint8 symmetric (AbsmaxOptimizer).


def quanto_qlinear(layer: torch.nn.Linear, bits: int, group_size: int | None) -> Any:
    """quanto's QLinear sharing `layer`'s weight; its default group size unless overridden."""
    quanto = _library("quanto", "optimum.quanto")
    qlinear = quanto.QLinear.from_module(layer, weights=quanto.qtypes[f"qint{bits}"])
    if group_size is not None:
        qlinear.weight_group_size = group_size
    return qlinear


def quanto_quantize(layer: torch.nn.Linear, bits: int, group_size: int | None) -> Any:
    """The quantized weight (a quanto QTensor) that QLinear.freeze() would store."""
    return quanto_qlinear(layer, bits, group_size).qweight


@COMPRESSORS.register("quanto")
def quanto_compression(layers: Layers, cfg: DictConfig, bits: int, sparsity: float) -> None:
    """optimum-quanto fake quantization of every target weight (biases stay FP)."""
    _check_bits("quanto", bits, QUANTO_BITS)
    group_size = cfg.group_size
    if group_size is not None:
        if bits == 8:
            raise QfeatError("compression=quanto quantizes 8 bits per channel; set group_size=null")
        bad = [name for name, layer in layers if group_size < 1 or layer.in_features % group_size]
        if bad:
            raise QfeatError(f"compression.group_size={group_size} does not divide {bad[0]}")
    for _, layer in layers:
        weight = layer.weight
        qweight = quanto_quantize(layer, bits, group_size)
        weight.copy_(qweight.dequantize().to(weight.dtype))
