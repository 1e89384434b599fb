"""Round-to-nearest (RTN) fake quantization of weight matrices in their [out, in] layout.

Conventions (the ones `torch.fake_quantize_per_channel_affine` implements, so the two agree
bit for bit): q = clamp(round(w * (1/scale)) + zero_point, qmin, qmax), w' = (q − zero_point)
* scale, rounding half to even, scales in float32. Symmetric uses the restricted signed range
[−(2^(b−1) − 1), 2^(b−1) − 1] with scale = max|w| / qmax and zero point 0; asymmetric uses
[0, 2^b − 1] with the range widened to include 0 (as PyTorch's min-max observers do).
"""

import torch

from sweep.compressors.registry import COMPRESSORS, Layers, divides, weight_method
from sweep.config.compression import RTNConfig


def quant_range(bits: int, symmetric: bool) -> tuple[int, int]:
    """The integer grid [qmin, qmax] of a `bits`-bit quantizer."""
    if symmetric:
        qmax = 2 ** (bits - 1) - 1
        return -qmax, qmax
    return 0, 2**bits - 1


def scale_and_zero_point(
    rows: torch.Tensor, bits: int, symmetric: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row float32 scale and integer zero point for a 2-D float32 tensor."""
    qmin, qmax = quant_range(bits, symmetric)
    if symmetric:
        amax = rows.abs().amax(dim=1)
        scale = amax / qmax
        zero_point = torch.zeros_like(amax, dtype=torch.int64)
    else:
        lo = rows.amin(dim=1).clamp(max=0.0)
        hi = rows.amax(dim=1).clamp(min=0.0)
        scale = (hi - lo) / float(qmax - qmin)
        safe = torch.where(scale > 0, scale, torch.ones_like(scale))
        zero_point = (qmin - torch.round(lo / safe)).clamp(qmin, qmax).to(torch.int64)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return scale, zero_point


def fake_quantize_rows(rows: torch.Tensor, bits: int, symmetric: bool) -> torch.Tensor:
    """Quantize then dequantize each row of a 2-D float32 tensor with its own scale."""
    qmin, qmax = quant_range(bits, symmetric)
    scale, zero_point = scale_and_zero_point(rows, bits, symmetric)
    inv_scale = (1.0 / scale).unsqueeze(1)
    zp = zero_point.unsqueeze(1).to(rows.dtype)
    q = torch.clamp(torch.round(rows * inv_scale) + zp, qmin, qmax)
    return (q - zp) * scale.unsqueeze(1)


def rtn(
    weight: torch.Tensor,
    bits: int,
    granularity: str = "channel",
    group_size: int | None = None,
    symmetric: bool = True,
) -> torch.Tensor:
    """RTN fake-quantized copy of `weight` ([out, in]), returned in the weight's dtype.

    granularity: "channel" (one scale per output row), "tensor" (one scale), or "group"
    (one scale per `group_size` consecutive input columns of each row).
    """
    if weight.dim() != 2:
        raise ValueError(f"rtn expects a 2-D [out, in] weight, got shape {tuple(weight.shape)}")
    w = weight.detach().to(torch.float32)
    out_dim, in_dim = w.shape
    if granularity == "channel":
        rows = w
    elif granularity == "tensor":
        rows = w.reshape(1, -1)
    elif granularity == "group":
        if group_size is None or in_dim % group_size != 0:
            raise ValueError(f"group_size={group_size} must divide the input dim {in_dim}")
        rows = w.reshape(out_dim * (in_dim // group_size), group_size)
    else:
        raise ValueError(f"unknown granularity {granularity!r}")
    return fake_quantize_rows(rows, bits, symmetric).reshape(out_dim, in_dim).to(weight.dtype)


def rtn_layers(layers: Layers, cfg: RTNConfig) -> None:
    """Round-to-nearest quantization of every target weight (biases stay FP)."""
    if cfg.granularity == "group":
        divides(layers, cfg.group_size, lambda layer: layer.in_features)
    for _, layer in layers:
        layer.weight.copy_(
            rtn(layer.weight, cfg.bits, cfg.granularity, cfg.group_size, cfg.symmetric)
        )


def no_compression(_model, _cfg, _calibration) -> None:
    """Identity: the control that every feature survives exactly."""


COMPRESSORS.register("rtn")(weight_method(rtn_layers))
COMPRESSORS.register("none")(no_compression)
