"""llm-compressor's methods against compressed-tensors' own quantization and their defining
properties: GPTQ and AWQ beat RTN on calibration data, W8A8 and FP8 quantize activations at run
time, Wanda and SparseGPT prune to the sparsity (every method's tiny job: tests/unit/job)."""

import copy

import pytest
import torch
import torch.nn.functional as F
from tiny_compressed import compressed, fp_and_calibration, fp_weights, modules

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


def int8_per_token(x: torch.Tensor) -> torch.Tensor:
    """Symmetric int8 per token, as compressed-tensors' dynamic TOKEN strategy defines it:
    scale = max|x| / (255 / 2), q = clamp(round(x / scale), −128, 127), x' = q · scale."""
    scale = x.abs().amax(-1, keepdim=True) / 127.5
    return torch.clamp(torch.round(x / scale), -128, 127) * scale


def fp8_per_token(x: torch.Tensor) -> torch.Tensor:
    """e4m3 per token: scale = max|x| / 448, x' = fp8(clamp(x / scale)) · scale."""
    scale = x.abs().amax(-1, keepdim=True) / 448.0
    return torch.clamp(x / scale, -448, 448).to(torch.float8_e4m3fn).to(x.dtype) * scale


@pytest.mark.parametrize(("name", "quantize"), [("w8a8", int8_per_token), ("fp8", fp8_per_token)])
def test_activations_are_quantized_at_run_time_as_by_hand(name: str, quantize) -> None:
    """The deployed forward equals the activation quantization done by hand on the same
    (fake-quantized) weights, and differs from the weight-only forward."""
    x = torch.randn(2, 7, 512, generator=torch.Generator().manual_seed(1))
    for module in modules(compressed(name, 8)).values():
        assert module.quantization_scheme.input_activations.dynamic is True
        xin = x[..., : module.in_features]
        with torch.no_grad():
            deployed = module(xin)
            by_hand = F.linear(quantize(xin), ct_weight(module), module.bias)
            weight_only = F.linear(xin, ct_weight(module), module.bias)
        torch.testing.assert_close(deployed, by_hand, rtol=1e-5, atol=1e-6)
        assert not torch.allclose(deployed, weight_only, rtol=0, atol=1e-6)


def pruned_mask(model: torch.nn.Module, name: str) -> torch.Tensor:
    return modules(model)[name].weight == 0


def first_layer_inputs() -> tuple[str, torch.Tensor]:
    """The first target layer's name and its inputs on the calibration slice: the FP model's,
    since no earlier layer was pruned when llm-compressor's sequential pipeline reaches it."""
    fp, calibration = fp_and_calibration()
    name = next(iter(modules(fp)))
    seen = []
    handle = modules(fp)[name].register_forward_hook(lambda _m, i, _o: seen.append(i[0]))
    with torch.no_grad():
        fp(calibration)
    handle.remove()
    return name, torch.cat([x.reshape(-1, x.shape[-1]) for x in seen])


def test_wanda_prunes_by_weight_times_input_norm() -> None:
    """Wanda's mask is the per-row smallest |W_ij| · ||X_j||₂ (its paper's score, computed
    directly from the first layer's calibration inputs), not magnitude pruning's."""
    name, x = first_layer_inputs()
    w = fp_weights()[name].double()
    score = w.abs() * x.double().norm(dim=0)
    k = int(w.shape[1] * 0.5)
    expected = torch.zeros_like(w, dtype=torch.bool)
    expected.scatter_(1, score.argsort(dim=1, stable=True)[:, :k], True)
    got = pruned_mask(compressed("wanda", 4), name)
    assert (got == expected).float().mean() > 0.999  # float order of near-ties aside
    magnitude = pruned_mask(compressed("magnitude", 4), name)
    assert (got != magnitude).float().mean() > 0.05


def test_sparsegpt_mask_is_not_magnitude_pruning() -> None:
    """SparseGPT selects weights by their second-order saliency and updates the rest: its mask
    differs from magnitude pruning's at the same sparsity, and its kept weights moved."""
    name = next(iter(modules(fp_and_calibration()[0])))
    model = compressed("sparsegpt", 4)
    got = pruned_mask(model, name)
    assert abs(float(got.float().mean()) - 0.5) < 0.01
    assert (got != pruned_mask(compressed("magnitude", 4), name)).float().mean() > 0.05
    kept = ~got
    assert not torch.equal(modules(model)[name].weight[kept], fp_weights()[name][kept])


@pytest.mark.parametrize("name", ["wanda", "sparsegpt"])
def test_calibrated_pruning_hits_the_sparsity(name: str) -> None:
    for module in modules(compressed(name, 4)).values():
        assert abs(float((module.weight == 0).float().mean()) - 0.5) < 0.01
