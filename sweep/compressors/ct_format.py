"""qfeat's RTN of a mixed config saved as a compressed-tensors checkpoint (pack-quantized, one
config group per part with its num_bits), dequantizing to qfeat's weights bit for bit.

compressed-tensors' own symmetric quantizer is not qfeat's RTN: it uses the full signed range
[−2^(b−1), 2^(b−1) − 1] with scale max|w| / ((2^b − 1) / 2), while qfeat's (torch's
fake_quantize convention) uses [−(2^(b−1) − 1), 2^(b−1) − 1] with scale max|w| / (2^(b−1) − 1)
(tests/unit/compressors/test_ct_format.py, with compressed-tensors' functions as the oracle).
qfeat's codes lie inside compressed-tensors' range and both dequantize code × scale, so the
format holds qfeat's RTN exactly when it is given qfeat's own scales, computed here from the
FP weights before they are quantized.
"""

from pathlib import Path

import torch
from torch import nn

from sweep.compressors.registry import library, selected_linears
from sweep.compressors.rtn import scale_and_zero_point
from sweep.config.compression import MixedConfig, RTNConfig

Scales = dict[str, torch.Tensor]


def exact_in_format(cfg: MixedConfig) -> bool:
    """Whether compressed-tensors' format holds this config's RTN exactly: per-channel
    symmetric RTN (its integer grid and per-row scales are the format's)."""
    parts = cfg.part_configs()
    return all(
        isinstance(p, RTNConfig) and p.granularity == "channel" and p.symmetric for p in parts
    )


def rtn_scales(model: nn.Module, cfg: MixedConfig) -> Scales:
    """Each selected layer's per-row RTN scale at its part's bits, from its FP weight."""
    return {
        name: scale_and_zero_point(layer.weight.detach().float(), part.bits, True)[0]
        for part in cfg.part_configs()
        for name, layer in selected_linears(model, part)
    }


def save_rtn_compressed(model: nn.Module, cfg: MixedConfig, scales: Scales, out: Path) -> None:
    """Save a model RTN-quantized by `cfg` (its weights already on qfeat's grid) in
    compressed-tensors' pack-quantized format with qfeat's scales."""
    ct = library("mixed", "compressed_tensors.quantization")
    compressor = library("mixed", "compressed_tensors.compressors").ModelCompressor
    groups = {
        f"qfeat_{i}_w{part.bits}": ct.QuantizationScheme(
            targets=[n for n, _ in selected_linears(model, part)],
            weights=ct.QuantizationArgs(
                num_bits=part.bits, type="int", symmetric=True, strategy="channel"
            ),
        )
        for i, part in enumerate(cfg.part_configs())
    }
    config = ct.QuantizationConfig(
        config_groups=groups, quantization_status=ct.QuantizationStatus.FROZEN
    )
    ct.apply_quantization_config(model, config)
    modules = dict(model.named_modules())
    with torch.no_grad():
        for name, scale in scales.items():
            layer = modules[name]
            layer.weight_scale.copy_(scale.view(-1, 1).to(layer.weight_scale.dtype))
            layer.weight_zero_point.zero_()
    saver = compressor.from_pretrained_model(model)
    saver.compress_model(model)
    model.save_pretrained(out)
    saver.update_config(str(out))
