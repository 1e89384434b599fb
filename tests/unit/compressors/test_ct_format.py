"""qfeat's RTN against compressed-tensors' own quantizer (the oracle): different grids, yet
compressed-tensors' format holds qfeat's codes and scales exactly, and a mixed RTN model saved
in it loads (transformers, compressed-tensors) to qfeat's weights bit for bit."""

import copy
import json

import pytest
import torch
from compressed_tensors.quantization import QuantizationArgs
from compressed_tensors.quantization.lifecycle.forward import dequantize, fake_quantize, quantize
from compressed_tensors.quantization.utils import calculate_qparams
from test_compress import small_neox
from transformers import AutoModelForCausalLM
from transformers.utils.quantization_config import CompressedTensorsConfig

from conftest import method
from sweep.compressors import compress_model
from sweep.compressors.ct_format import exact_in_format, rtn_scales, save_rtn_compressed
from sweep.compressors.rtn import quant_range, rtn, scale_and_zero_point

PARTS = (
    "compression.parts=[{targets:[attention],blocks:[0],bits:5},"
    "{targets:[mlp_out],blocks:[1],bits:3},{targets:[mlp_in],bits:8}]"
)


def channel_args(bits: int) -> QuantizationArgs:
    return QuantizationArgs(num_bits=bits, type="int", symmetric=True, strategy="channel")


@pytest.mark.parametrize("bits", [3, 4, 8])
def test_qfeat_rtn_is_not_compressed_tensors_quantizer_but_its_format_holds_it(bits) -> None:
    w = torch.randn(48, 32, generator=torch.Generator().manual_seed(bits))
    args = channel_args(bits)
    scale_ct, zp_ct = calculate_qparams(w.amin(1, keepdim=True), w.amax(1, keepdim=True), args)
    theirs, ours = fake_quantize(w, scale_ct, zp_ct, args), rtn(w, bits)
    assert not torch.equal(theirs, ours)  # scale max|w| / ((2^b - 1) / 2) vs max|w| / qmax
    assert (theirs / scale_ct).round().min() == -(2 ** (bits - 1))  # the full signed range
    scale, _ = scale_and_zero_point(w, bits, True)
    scale, zero = scale.unsqueeze(1), torch.zeros(len(scale), 1)
    codes = torch.round(w * (1 / scale)).clamp(*quant_range(bits, True))
    assert torch.equal(dequantize(codes.to(torch.int8), scale, zero, args), ours)
    assert torch.equal(quantize(ours, scale, zero, args, dtype=torch.int8).float(), codes)


def test_a_mixed_rtn_model_saved_in_the_format_loads_to_qfeats_weights(tmp_path) -> None:
    fp = small_neox()
    cfg = method("compression=mixed", PARTS)
    assert exact_in_format(cfg)
    assert not exact_in_format(method("compression=mixed", "+compression.options={symmetric:0}"))
    expected = copy.deepcopy(fp)
    compress_model(expected, cfg)
    model = copy.deepcopy(fp)
    scales = rtn_scales(model, cfg)
    compress_model(model, cfg)
    save_rtn_compressed(model, cfg, scales, tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(
        tmp_path, quantization_config=CompressedTensorsConfig(dequantize=True)
    ).state_dict()
    for key, value in expected.state_dict().items():
        assert torch.equal(loaded[key], value), key
    quant = json.loads((tmp_path / "config.json").read_text())["quantization_config"]
    assert quant["format"] == "pack-quantized"
    widths = sorted(g["weights"]["num_bits"] for g in quant["config_groups"].values())
    assert widths == [3, 5, 8]
