"""torchao methods against torchao's own dequantization and an independent computation of the
same scheme; ≤ 2^bits values per group; W8A8 quantizes activations at run time. (Their tiny
jobs, alone and as the baseline of magnitude_matched, are parametrised in tests/unit/job; their
saved checkpoints are audited in tests/unit/cli/test_audit_shipped.py.)"""

import pytest
import torch
import torch.nn.functional as F
from tiny_compressed import compressed, fp_weights, method_cfg, modules

X = torch.randn(2, 7, 512, generator=torch.Generator().manual_seed(2))


def symmetric_int(weight: torch.Tensor, bits: int, group: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(integers, dequantized) of symmetric full-range b-bit quantization, one scale per group:
    scale = max|w| / ((2^b − 1) / 2), q = clamp(round(w · (1/scale)), −2^(b−1), 2^(b−1) − 1).

    A group's largest |w| lands on ±(2^b − 1)/2, a rounding tie; multiplying by the reciprocal
    (as torchao does) puts it one ulp inside, so it rounds to ±(2^(b−1) − 1), not to −2^(b−1).
    """
    groups = weight.reshape(-1, group)
    scale = groups.abs().amax(dim=1, keepdim=True) / ((2**bits - 1) / 2)
    q = torch.clamp(torch.round(groups * (1.0 / scale)), -(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    return q.reshape(weight.shape), (q * scale).reshape(weight.shape)


def e4m3_per_row(weight: torch.Tensor) -> torch.Tensor:
    """Dequantized e4m3 weights, one scale per row: scale = max|w| / 448."""
    scale = weight.abs().amax(dim=1, keepdim=True) / torch.finfo(torch.float8_e4m3fn).max
    return (weight / scale).to(torch.float8_e4m3fn).to(weight.dtype) * scale


CASES = [  # (method, bits, group_size or None (the config's default), torchao's tensor class)
    ("ao_int8wo", 8, None, "Int8Tensor"),
    ("ao_int8wo", 8, 32, "Int8Tensor"),
    ("ao_w8a8", 8, None, "Int8Tensor"),
    ("ao_intxwo", 4, None, "IntxUnpackedToInt8Tensor"),
    ("ao_intxwo", 3, 32, "IntxUnpackedToInt8Tensor"),
    ("ao_intxwo", 2, 64, "IntxUnpackedToInt8Tensor"),
    ("ao_fp8wo", 8, None, "Float8Tensor"),
]


@pytest.mark.parametrize(("name", "bits", "group", "cls"), CASES)
def test_weights_are_torchao_dequantization_of_the_scheme(name, bits, group, cls) -> None:
    default = method_cfg(name).compression.get("group_size")  # None: per output channel
    for layer_name, module in modules(compressed(name, bits, group)).items():
        weight, fp = module.weight, fp_weights()[layer_name]
        assert type(weight).__name__ == cls and weight.shape == fp.shape
        deq = weight.dequantize()
        size = group or default or fp.shape[1]  # per output channel: a group is a row
        if name == "ao_fp8wo":
            assert torch.equal(deq, e4m3_per_row(fp))
        else:
            q, ours = symmetric_int(fp, bits, size)
            assert torch.equal(weight.qdata.float(), q)
            torch.testing.assert_close(deq, ours, rtol=1e-6, atol=0)
        assert max(len(g.unique()) for g in deq.reshape(-1, size)) <= 2**bits
        if name != "ao_w8a8":  # weight-only: float activations times the quantized weights
            xin = X[..., : module.in_features]
            torch.testing.assert_close(module(xin), F.linear(xin, deq, module.bias))


def test_w8a8_quantizes_activations_per_token_at_run_time() -> None:
    w8a8, int8wo = modules(compressed("ao_w8a8", 8)), modules(compressed("ao_int8wo", 8))
    for layer_name, module in w8a8.items():
        weight, same = module.weight, int8wo[layer_name].weight
        assert torch.equal(weight.qdata, same.qdata) and torch.equal(weight.scale, same.scale)
        xin = X[..., : module.in_features]
        with torch.no_grad():
            deployed = module(xin)
            weight_only = int8wo[layer_name](xin)
            _, x_deq = symmetric_int(xin.reshape(-1, xin.shape[-1]), 8, xin.shape[-1])
            by_hand = F.linear(x_deq, weight.dequantize(), module.bias).reshape(deployed.shape)
        assert not torch.allclose(deployed, weight_only, rtol=0, atol=1e-6)
        assert (deployed - weight_only).abs().max() < 0.1 * weight_only.abs().max()
        torch.testing.assert_close(deployed, by_hand, rtol=1e-5, atol=1e-5)
