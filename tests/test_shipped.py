"""Shipped methods: pre-flight checks, llm-compressor's against compressed-tensors' own
quantization and its defining properties, and every method end to end, alone and as the
reference of magnitude_matched (bitsandbytes' and torchao's oracle tests: test_shipped_bnb.py,
test_shipped_ao.py)."""

import copy
import importlib.util
import json
import math
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from conftest import ROOT, SMALL, compose_config
from sweep.compressors import COMPRESSORS, check_method, compress_model, target_linears
from sweep.compressors.rtn import rtn
from sweep.constants import SUMMARY_FILE
from sweep.data import build_token_sets
from sweep.errors import QfeatError
from sweep.job import run
from sweep.models import load_hf_model, load_tokenizer

LLMC = importlib.util.find_spec("llmcompressor") is not None
needs_llmc = pytest.mark.skipif(not LLMC, reason="llmcompressor not installed")
# Every method run through a deployment library's own modules (not written back as float
# weights like rtn, hqq, quanto): a newly registered one is covered by the end-to-end tests here.
SHIPPED = [
    n
    for n in COMPRESSORS.names()
    if COMPRESSORS.get(n).requires and not COMPRESSORS.get(n).weights_only
]


def default_bits(name: str) -> int:
    """4 where the method supports it (or ignores bits), else its first supported bit-width."""
    bits = COMPRESSORS.get(name).bits
    return 4 if bits is None or 4 in bits else bits[0]


def available(name: str) -> bool:
    """Whether every library the method needs is installed."""
    return all(importlib.util.find_spec(mod) for mod, _ in COMPRESSORS.get(name).requires)


def method_cfg(name: str, *overrides: str) -> DictConfig:
    """The shipped config of `name`, shrunk."""
    return compose_config([*SMALL, f"compression={name}", *overrides])


@cache
def fp_and_calibration() -> tuple[torch.nn.Module, torch.Tensor]:
    """The tiny FP model and 8 calibration sequences (disjoint from the measured tokens)."""
    cfg = method_cfg("rtn")
    _, calibration = build_token_sets(cfg.data, load_tokenizer(cfg.model), 8)
    return load_hf_model(cfg.model, torch.device("cpu")), calibration


@cache
def compressed(name: str, bits: int, group_size: int | None = None) -> torch.nn.Module:
    """A copy of tiny compressed by `name` (cached: calibration takes seconds)."""
    fp, calibration = fp_and_calibration()
    model = copy.deepcopy(fp)
    cfg = method_cfg(name, f"bits={bits}").compression
    if group_size is not None:
        cfg.group_size = group_size
    assert compress_model(model, cfg, bits, 0.5, calibration=calibration) == 16
    return model


def modules(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """The target layers (or the library modules that replaced them) by name."""
    return {name: layer for name, layer in target_linears(model, ["attention", "mlp"])}


def fp_weights() -> dict[str, torch.Tensor]:
    """The FP target weights of tiny."""
    return {n: m.weight.detach() for n, m in modules(fp_and_calibration()[0]).items()}


def ct_weight(module: torch.nn.Module) -> torch.Tensor:
    """compressed-tensors' own fake quantization of a module's weight (what its forward uses)."""
    from compressed_tensors.quantization.lifecycle.forward import fake_quantize

    args = module.quantization_scheme.weights
    zero = getattr(module, "weight_zero_point", None)
    return fake_quantize(module.weight, module.weight_scale, zero, args)


# --------------------------------------------------------------------------------------------
# Pre-flight: unsupported bit-widths and missing libraries, one line before any model loads.


@pytest.mark.parametrize("name", [n for n in COMPRESSORS.names() if COMPRESSORS.get(n).bits])
def test_unsupported_bits_name_the_supported_ones(name: str) -> None:
    if not available(name):  # a missing library is reported first (the next test)
        pytest.skip(f"{name}: library not installed")
    supported = COMPRESSORS.get(name).bits
    bad = next(b for b in range(2, 17) if b not in supported)
    with pytest.raises(QfeatError, match=rf"compression={name} supports bits in \{{.*\}}; got"):
        check_method(method_cfg(name).compression, bad)


@pytest.mark.parametrize("name", [n for n in COMPRESSORS.names() if COMPRESSORS.get(n).requires])
def test_missing_library_names_the_pip_line(name: str, monkeypatch) -> None:
    missing = COMPRESSORS.get(name).requires[0][0]
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda mod, *a: None if mod == missing else real(mod, *a)
    )
    bits = (COMPRESSORS.get(name).bits or (4,))[0]
    with pytest.raises(QfeatError, match=rf"compression={name} needs `pip install .*==.*`"):
        check_method(method_cfg(name).compression, bits)


def test_only_an_in_place_pruner_is_matched() -> None:
    cfg = method_cfg("wanda", "compression.match=gptq").compression
    with pytest.raises(QfeatError, match=r"needs an in-place pruner .*magnitude.*; got wanda"):
        check_method(cfg, 4)


def test_cli_refuses_nf4_at_3_bits_in_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "launch.py", "compression=nf4", "bits=3", f"out_root={tmp_path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [x for x in (proc.stdout + proc.stderr).splitlines() if "error" in x.lower()]
    assert len(lines) == 1 and "compression=nf4 supports bits in {4}; got bits=3" in lines[0]
    assert "Traceback" not in proc.stderr and not list(tmp_path.rglob(SUMMARY_FILE))


# --------------------------------------------------------------------------------------------
# llm-compressor: compressed-tensors' quantization, GPTQ/AWQ beat RTN, activations quantized.


@needs_llmc
@pytest.mark.parametrize(("name", "bits"), [("gptq", 3), ("awq", 3), ("w8a8", 8), ("fp8", 8)])
def test_llmc_weights_are_compressed_tensors_quantization(name: str, bits: int) -> None:
    for module in modules(compressed(name, bits, 32)).values():
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


@needs_llmc
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


@needs_llmc
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


@needs_llmc
@pytest.mark.parametrize("name", ["wanda", "sparsegpt"])
def test_calibrated_pruning_hits_the_sparsity(name: str) -> None:
    for module in modules(compressed(name, 4)).values():
        assert abs(float((module.weight == 0).float().mean()) - 0.5) < 0.01


# --------------------------------------------------------------------------------------------
# One tiny job per method, alone and as the reference of magnitude_matched.

TINY_JOB = [
    "data.n_sequences=8",
    "eval.sliding_window_stride=null",
    "compression.calibration_sequences=4",
]


@pytest.mark.parametrize("name", SHIPPED)
def test_one_tiny_job_per_method(name: str, tmp_path: Path) -> None:
    if not available(name):
        pytest.skip(f"{name}: library not installed")
    bits = default_bits(name)
    cfg = method_cfg(name, *TINY_JOB, f"bits={bits}", f"out_root={tmp_path}")
    metrics = run(cfg)
    (summary,) = [json.loads(p.read_text()) for p in tmp_path.rglob(SUMMARY_FILE)]
    assert summary["compression"] == name and metrics["n_compressed_matrices"] == 16
    assert metrics["n_active"] > 0 and -1 <= metrics["mean_r"] <= 1
    assert math.isfinite(metrics["q_ppl"]) and metrics["kl_mean"] > 0
    print(f"{name} bits={bits}: wall {summary['wall_time_s']:.1f}s, timings {summary['timings_s']}")


@pytest.mark.parametrize("name", SHIPPED)
def test_method_is_a_matched_reference(name: str, tmp_path: Path) -> None:
    if not available(name):
        pytest.skip(f"{name}: library not installed")
    overrides = [*TINY_JOB, f"compression.match={name}", "compression.max_steps=4"]
    bits = default_bits(name)
    cfg = method_cfg("magnitude_matched", *overrides, f"bits={bits}", f"out_root={tmp_path}")
    run(cfg)
    (summary,) = [json.loads(p.read_text()) for p in tmp_path.rglob(SUMMARY_FILE)]
    matched = summary["matched"]
    assert matched["reference_method"] == name and len(matched["search"]["history"]) <= 4
    assert 0 <= matched["reference"]["frac_survived"] <= 1
