"""HQQ and optimum-quanto compressors: each library's own quantization, written back in place."""

import copy
import itertools

import hqq.core.quantize as hqq
import optimum.quanto as quanto
import pytest
import torch
from test_compress import small_neox

from conftest import method
from sweep.base.errors import QfeatError
from sweep.compressors import compress_model, target_linears
from sweep.config.compression import CompressionConfig

TARGETS = ["attention", "mlp"]


def config(name: str, bits: int, **fields) -> CompressionConfig:
    """The method's config as a job composes it, with option overrides (None: null)."""
    options = [f"compression.{k}={'null' if v is None else v}" for k, v in fields.items()]
    return method(f"compression={name}", f"bits={bits}", *options)


def compressed(name: str, bits: int, **fields) -> tuple[dict, dict]:
    """(FP state dict, compressed state dict) of one small random GPT-NeoX."""
    model = small_neox()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pointers = {n: layer.weight.data_ptr() for n, layer in target_linears(model, TARGETS)}
    assert compress_model(model, config(name, bits, **fields)) == 8
    after = model.state_dict()
    for n, layer in target_linears(model, TARGETS):  # in place, same dtype and device
        assert layer.weight.data_ptr() == pointers[n] and layer.weight.dtype == torch.float32
    return before, after


def target_keys() -> list[str]:
    """State-dict keys of the eight target weights of small_neox."""
    return [f"{n}.weight" for n, _ in target_linears(small_neox(), TARGETS)]


def assert_only_targets_changed(before: dict, after: dict) -> None:
    """Every target weight changed and nothing else did (biases, norms, embeddings stay FP)."""
    targets = set(target_keys())
    for key, value in after.items():
        assert torch.equal(value, before[key]) != (key in targets), key


def max_levels(weight: torch.Tensor, groups: torch.Tensor) -> int:
    """The most distinct values in any group (groups: one group per row)."""
    assert groups.numel() == weight.numel()
    return max(len(torch.unique(row)) for row in groups)


def hqq_reference(weight: torch.Tensor, bits: int, group_size: int | None, axis: int, **kw):
    """HQQ's documented path: BaseQuantizeConfig -> Quantizer.quantize -> Quantizer.dequantize."""
    params = hqq.BaseQuantizeConfig(nbits=bits, group_size=group_size, axis=axis)
    params = {**params["weight_quant_params"], **kw}
    w_q, meta = hqq.Quantizer.quantize(weight, device="cpu", compute_dtype=torch.float32, **params)
    meta["compute_dtype"] = torch.float32
    return hqq.Quantizer.dequantize(w_q, meta)


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
@pytest.mark.parametrize("axis", [0, 1])
def test_hqq_writes_the_library_dequantization(bits: int, axis: int) -> None:
    before, after = compressed("hqq", bits, group_size=16, axis=axis)
    assert_only_targets_changed(before, after)
    for key in target_keys():
        w = after[key]
        assert torch.equal(w, hqq_reference(before[key], bits, 16, axis))
        groups = w.reshape(-1, 16) if axis == 1 else w.reshape(16, -1).T
        assert max_levels(w, groups) <= 2**bits


def test_hqq_without_grouping_quantizes_each_row_and_optimize_is_honoured() -> None:
    before, after = compressed("hqq", 3, group_size=None, optimize=False)
    for key in target_keys():
        w0, w = before[key], after[key]
        assert max_levels(w, w) <= 8
        # Without optimisation HQQ is plain asymmetric min-max per row.
        lo, hi = w0.amin(1, keepdim=True), w0.amax(1, keepdim=True)
        scale = 7 / (hi - lo)
        zero = -lo * scale
        q = torch.round(w0 * scale + zero).clamp(0, 7)
        torch.testing.assert_close(w, (q - zero) / scale, rtol=1e-5, atol=1e-6)
    _, optimised = compressed("hqq", 3, group_size=None, optimize=True)
    assert any(not torch.equal(after[k], optimised[k]) for k in target_keys())


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_quanto_writes_what_quantize_and_freeze_store(bits: int) -> None:
    before, after = compressed("quanto", bits)
    assert_only_targets_changed(before, after)
    reference = small_neox()
    reference.load_state_dict(before)
    quanto.quantize(reference, weights=quanto.qtypes[f"qint{bits}"])
    quanto.freeze(reference)
    frozen = dict(reference.named_modules())
    for name, _ in target_linears(small_neox(), TARGETS):
        qweight = frozen[name].weight
        assert isinstance(qweight, quanto.QTensor)
        w = after[f"{name}.weight"]
        assert torch.equal(w, qweight.dequantize())
        assert max_levels(w, w) <= 2**bits  # in_features <= 128: quanto quantizes per row


@pytest.mark.parametrize("bits", [2, 4])
def test_quanto_group_size_is_quantos_own_grouping(bits: int) -> None:
    before, after = compressed("quanto", bits, group_size=16)
    qtype = quanto.qtypes[f"qint{bits}"]
    for key in target_keys():
        scale, shift = quanto.MaxOptimizer()(before[key], qtype=qtype, axis=0, group_size=16)
        qweight = quanto.quantize_weight(
            before[key], qtype=qtype, axis=0, scale=scale, shift=shift, group_size=16
        )
        w = after[key]
        assert torch.equal(w, qweight.dequantize())
        assert max_levels(w, w.reshape(-1, 16)) <= 2**bits


@pytest.mark.parametrize(("name", "all_bits"), [("hqq", [2, 3, 4, 5, 6, 8]), ("quanto", [2, 4, 8])])
def test_error_shrinks_with_more_bits(name: str, all_bits: list[int]) -> None:
    errors = []
    for bits in all_bits:
        before, after = compressed(name, bits)
        errors.append(sum(float((after[k] - before[k]).abs().mean()) for k in target_keys()))
    assert all(a > b for a, b in itertools.pairwise(errors)), errors


@pytest.mark.parametrize(
    ("name", "bits", "fields", "message"),
    [
        ("hqq", 7, {}, r"hqq supports bits in \{2, 3, 4, 5, 6, 8\}; got bits=7"),
        ("quanto", 3, {}, r"quanto supports bits in \{2, 4, 8\}; got bits=3"),
        ("hqq", 4, {"group_size": 12}, "multiple of 8"),
        ("hqq", 4, {"group_size": 48}, "does not divide"),
        ("hqq", 4, {"axis": 2}, "axis 0 or 1"),
        ("quanto", 4, {"group_size": 24}, "does not divide"),
        ("quanto", 8, {"group_size": 16}, "per channel"),
    ],
)
def test_unsupported_settings_fail_before_any_change(
    name: str, bits: int, fields: dict, message: str
) -> None:
    model = small_neox()
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(QfeatError, match=message):
        compress_model(model, config(name, bits, **fields))
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("name", ["hqq", "quanto"])
def test_half_precision_weights_keep_their_dtype(name: str) -> None:
    model = small_neox().to(torch.bfloat16)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    compress_model(model, config(name, 4, group_size=16))
    after = model.state_dict()
    assert_only_targets_changed(before, after)
    assert all(after[k].dtype == torch.bfloat16 for k in target_keys())
