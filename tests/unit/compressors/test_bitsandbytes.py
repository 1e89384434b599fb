"""bitsandbytes methods against bitsandbytes' own quantization, and its modules' forward pass in
eval mode, as transformers loads them: NF4/FP4 with the dequantized weights, LLM.int8 with int8
activations and unquantized outlier columns."""

import copy

import bitsandbytes as bnb
import pytest
import torch
import torch.nn.functional as F
from tiny_compressed import compressed, fp_weights, modules


@pytest.mark.parametrize("quant_type", ["nf4", "fp4"])
def test_4bit_weights_are_bitsandbytes_dequantization(quant_type: str) -> None:
    import bitsandbytes.functional as bf

    x = torch.randn(5, 512, generator=torch.Generator().manual_seed(0))
    for name, module in modules(compressed(quant_type, 4)).items():
        assert isinstance(module, bnb.nn.Linear4bit)
        deq = bf.dequantize_4bit(module.weight.data, module.weight.quant_state)
        q, state = bf.quantize_4bit(fp_weights()[name], blocksize=64, quant_type=quant_type)
        assert torch.equal(deq, bf.dequantize_4bit(q, state))
        assert max(len(block.unique()) for block in deq.reshape(-1, 64)) <= 2**4
        xin = x[:, : module.in_features]
        with torch.no_grad():  # on a copy: bnb's CPU kernel repacks the weights in place
            out = copy.deepcopy(module)(xin)  # eval mode, as transformers loads it
            expected = F.linear(xin, deq, module.bias)
        if module.support_avx512bf16_for_cpu:  # bnb's fused CPU kernel computes in bfloat16
            assert (out - expected).abs().max() < 2e-2 * expected.abs().max()
        else:
            torch.testing.assert_close(out, expected)


def test_llm_int8_weights_are_bitsandbytes_int8() -> None:
    import bitsandbytes.functional as bf

    for name, module in modules(compressed("llm_int8", 8)).items():
        assert isinstance(module, bnb.nn.Linear8bitLt)
        cb, scb, _ = bf.int8_vectorwise_quant(fp_weights()[name].half())
        assert torch.equal(module.weight.data, cb) and torch.equal(module.weight.SCB, scb)
        assert max(len(row.unique()) for row in module.weight.data) <= 2**8


def test_llm_int8_quantizes_activations_at_run_time_on_cpu() -> None:
    """In eval mode (as transformers loads it) LLM.int8 quantizes each input row to int8, and
    multiplies columns holding an outlier (|x| ≥ 6) unquantized: equal to that by hand."""
    x = torch.randn(2, 7, 512, generator=torch.Generator().manual_seed(1))
    x[..., 5] = 20.0  # an outlier column
    for layer in modules(compressed("llm_int8", 8)).values():
        module = copy.deepcopy(layer)  # a forward moves the int8 weights into module.state
        assert not module.training
        xin = x[..., : module.in_features]
        with torch.no_grad():
            deployed = module(xin)
        cb, scb = module.state.CB.float(), module.state.SCB
        deq = cb * (scb.unsqueeze(1) / 127)
        a = xin.reshape(-1, xin.shape[-1])
        outlier = (a.half().abs() >= 6).any(0)
        inlier = a.half().float().masked_fill(outlier, 0)
        absmax = inlier.abs().amax(1, keepdim=True)
        int8_part = (torch.round(inlier * (127 / absmax)) @ cb.T) * absmax * scb / 127**2
        by_hand = int8_part + a[:, outlier] @ deq[:, outlier].T + module.bias
        weight_only = F.linear(xin, deq, module.bias)
        torch.testing.assert_close(deployed, by_hand.reshape(deployed.shape), rtol=0, atol=3e-4)
        assert (deployed - weight_only).abs().max() > 3e-3
