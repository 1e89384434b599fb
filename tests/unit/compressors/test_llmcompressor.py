"""llm-compressor's methods against compressed-tensors' own quantization and their defining
properties: GPTQ and AWQ beat RTN on calibration data, W8A8 and FP8 quantize activations at run
time, Wanda and SparseGPT prune to the sparsity (every method's tiny job: tests/unit/job)."""

import copy

import pytest
import torch
import torch.nn.functional as F
from tiny_compressed import compressed, fp_and_calibration, modules

from sweep.compressors import target_linears
from sweep.compressors.rtn import rtn


def ct_weight(module: torch.nn.Module) -> torch.Tensor:
    """compressed-tensors' own fake quantization of a module's weight (what its forward uses)."""
    from compressed_tensors.quantization.lifecycle.forward import fake_quantize

    args = module.quantization_scheme.weights
    zero = getattr(module, "weight_zero_point", None)
    return fake_quantize(module.weight, module.weight_scale, zero, args)


# --------------------------------------------------------------------------------------------
# llm-compressor: compressed-tensors' quantization, GPTQ/AWQ beat RTN, activations quantized.


@pytest.mark.parametrize(
    ("name", "bits", "group"),
    [("gptq", 3, 32), ("awq", 3, 32), ("w8a8", 8, None), ("fp8", 8, None)],
)
def test_llmc_weights_are_compressed_tensors_quantization(name: str, bits: int, group) -> None:
    for module in modules(compressed(name, bits, group)).values():
        args = module.quantization_scheme.weights
        assert args.num_bits == bits
        w = ct_weight(module)
        if args.type == "int":
            groups = w.reshape(-1, args.group_size) if args.group_size else w
            assert max(len(g.unique()) for g in groups) <= 2**bits
        if name in ("gptq", "w8a8"):  # GPTQ writes its quantized weights in place
            torch.testing.assert_close(module.weight, w, rtol=0, atol=1e-6)


def layer_output_error(model: torch.nn.Module, tokens: torch.Tensor) -> float:
    """Σ over target layers of ‖out − out_FP‖² / ‖out_FP‖² on `tokens` (full forward passes)."""
    fp = fp_and_calibration()[0]
    outs: dict[str, list[torch.Tensor]] = {"fp": [], "q": []}
    handles = [
        layer.register_forward_hook(lambda _m, _i, o, key=key: outs[key].append(o.detach()))
        for key, net in (("fp", fp), ("q", model))
        for _, layer in target_linears(net, ["attention", "mlp"])
    ]
    with torch.no_grad():
        fp(tokens)
        model(tokens)
    for handle in handles:
        handle.remove()
    return sum(
        float((q - f).pow(2).sum() / f.pow(2).sum())
        for f, q in zip(outs["fp"], outs["q"], strict=True)
    )


@pytest.mark.parametrize("name", ["gptq", "awq"])
def test_gptq_and_awq_beat_rtn_on_calibration_data(name: str) -> None:
    fp, calibration = fp_and_calibration()
    baseline = copy.deepcopy(fp)
    with torch.no_grad():
        for _, layer in target_linears(baseline, ["attention", "mlp"]):
            layer.weight.copy_(rtn(layer.weight, 3, "group", 32, symmetric=True))
    ours = layer_output_error(compressed(name, 3, 32), calibration)
    theirs = layer_output_error(baseline, calibration)
    print(f"{name} 3-bit g32 layer-output error {ours:.4f} vs RTN {theirs:.4f}")
    assert ours < theirs


@pytest.mark.parametrize("name", ["w8a8", "fp8"])
def test_activations_are_quantized_at_run_time(name: str) -> None:
    x = torch.randn(2, 7, 512, generator=torch.Generator().manual_seed(1))
    for module in modules(compressed(name, 8)).values():
        assert module.quantization_scheme.input_activations.dynamic is True
        xin = x[..., : module.in_features]
        with torch.no_grad():
            deployed = module(xin)
            weight_only = F.linear(xin, ct_weight(module), module.bias)
        assert not torch.allclose(deployed, weight_only, rtol=0, atol=1e-6)
        assert (deployed - weight_only).abs().max() < 0.1 * weight_only.abs().max()


@pytest.mark.parametrize("name", ["wanda", "sparsegpt"])
def test_calibrated_pruning_hits_the_sparsity(name: str) -> None:
    for module in modules(compressed(name, 4)).values():
        assert abs(float((module.weight == 0).float().mean()) - 0.5) < 0.01
