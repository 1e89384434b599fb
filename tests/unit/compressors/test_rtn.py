"""RTN against PyTorch's fake-quantize oracles and a direct group-wise reference."""

import itertools

import pytest
import torch

from sweep.compressors.rtn import quant_range, rtn, scale_and_zero_point

BITS = list(range(2, 17))


def weights(out: int = 12, inp: int = 32) -> torch.Tensor:
    w = torch.randn(out, inp) * torch.logspace(-2, 1, out)[:, None]
    w[3] = 0.0  # an all-zero channel must not divide by zero
    w[5] = w[5].abs()  # a one-signed channel exercises the asymmetric zero point
    return w


@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("symmetric", [True, False])
def test_per_channel_equals_torch_fake_quantize(bits: int, symmetric: bool) -> None:
    w = weights()
    scale, zp = scale_and_zero_point(w, bits, symmetric)
    qmin, qmax = quant_range(bits, symmetric)
    expected = torch.fake_quantize_per_channel_affine(w, scale, zp.to(torch.int32), 0, qmin, qmax)
    assert torch.equal(rtn(w, bits, "channel", symmetric=symmetric), expected)


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("symmetric", [True, False])
def test_per_tensor_equals_torch_fake_quantize(bits: int, symmetric: bool) -> None:
    w = weights()
    scale, zp = scale_and_zero_point(w.reshape(1, -1), bits, symmetric)
    qmin, qmax = quant_range(bits, symmetric)
    expected = torch.fake_quantize_per_tensor_affine(w, float(scale), int(zp), qmin, qmax)
    assert torch.equal(rtn(w, bits, "tensor", symmetric=symmetric), expected)


def group_reference(w: torch.Tensor, bits: int, group: int, symmetric: bool) -> torch.Tensor:
    """Element-by-element RTN of each group, written out plainly."""
    out = torch.empty_like(w)
    qmin, qmax = quant_range(bits, symmetric)
    for i in range(w.shape[0]):
        for g in range(0, w.shape[1], group):
            block = w[i, g : g + group]
            if symmetric:
                scale = block.abs().max() / qmax
                zp = 0.0
            else:
                lo, hi = min(block.min(), 0.0), max(block.max(), 0.0)
                scale = (hi - lo) / (qmax - qmin)
                zp = qmin - torch.round(lo / scale) if scale > 0 else 0.0
            if scale == 0:
                scale = torch.tensor(1.0)
            q = torch.clamp(torch.round(block * (1.0 / scale)) + zp, qmin, qmax)
            out[i, g : g + group] = (q - zp) * scale
    return out


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("group", [4, 8, 16])
def test_group_wise_matches_direct_reference(bits: int, symmetric: bool, group: int) -> None:
    w = weights(6, 16)
    got = rtn(w, bits, "group", group_size=group, symmetric=symmetric)
    torch.testing.assert_close(got, group_reference(w, bits, group, symmetric), rtol=0, atol=1e-6)


@pytest.mark.parametrize("granularity", ["channel", "tensor", "group"])
@pytest.mark.parametrize("symmetric", [True, False])
def test_more_bits_never_increase_max_error(granularity: str, symmetric: bool) -> None:
    w = weights()
    errors = [
        (rtn(w, b, granularity, group_size=8, symmetric=symmetric) - w).abs().max().item()
        for b in BITS
    ]
    assert all(later <= earlier for earlier, later in itertools.pairwise(errors))
    assert errors[-1] < 1e-3 * w.abs().max().item()


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_levels_per_channel_at_most_two_to_the_bits(bits: int) -> None:
    w = weights()
    for symmetric in (True, False):
        q = rtn(w, bits, "channel", symmetric=symmetric)
        assert max(len(torch.unique(row)) for row in q) <= 2**bits


def test_keeps_dtype_and_rejects_bad_shapes() -> None:
    w = weights().to(torch.bfloat16)
    assert rtn(w, 4).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="2-D"):
        rtn(torch.randn(3, 4, 5), 4)
    with pytest.raises(ValueError, match="divide"):
        rtn(torch.randn(4, 10), 4, "group", group_size=3)


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_asymmetric_grid_is_torchs_min_max_observer(bits: int) -> None:
    """Scale and zero point equal PyTorch's per-channel min-max observer on [0, 2^b − 1]
    (an independent grid), and so does the fake-quantized weight."""
    w = weights()
    observer = torch.ao.quantization.PerChannelMinMaxObserver(
        ch_axis=0,
        dtype=torch.quint8,
        qscheme=torch.per_channel_affine,
        quant_min=0,
        quant_max=2**bits - 1,
    )
    observer(w)
    scale, zp = observer.calculate_qparams()
    nonzero = w.abs().amax(1) > 0  # the observer floors an all-zero row's scale at eps
    ours_scale, ours_zp = scale_and_zero_point(w, bits, symmetric=False)
    torch.testing.assert_close(ours_scale[nonzero], scale[nonzero], rtol=1e-6, atol=0)
    assert torch.equal(ours_zp[nonzero], zp[nonzero].to(torch.int64))
    expected = torch.fake_quantize_per_channel_affine(w, scale, zp, 0, 0, 2**bits - 1)
    torch.testing.assert_close(rtn(w, bits, symmetric=False)[nonzero], expected[nonzero])


def test_asymmetric_values_past_the_grid_are_clamped() -> None:
    """[−1.5, 1.5] at 2 bits: scale 1, zero point 2 (round half to even), so 1.5 rounds to
    level 4 > 3 and must clamp to 1.0, as torch's fake quantization does."""
    w = torch.tensor([[-1.5, 1.5]])
    expected = torch.fake_quantize_per_channel_affine(
        w, torch.tensor([1.0]), torch.tensor([2], dtype=torch.int32), 0, 0, 3
    )
    assert expected.tolist() == [[-2.0, 1.0]]
    assert torch.equal(rtn(w, 2, symmetric=False), expected)


def test_defaults_to_symmetric_and_quantizes_in_float32() -> None:
    """`rtn(w, bits)` is symmetric per channel; a bfloat16 weight is quantized in float32 and
    only the result is cast back."""
    w = weights()
    assert torch.equal(rtn(w, 4), rtn(w, 4, "channel", symmetric=True))
    low = w.bfloat16()
    assert torch.equal(rtn(low, 3), rtn(low.float(), 3).bfloat16())
    with pytest.raises(ValueError, match="unknown granularity 'row'"):
        rtn(w, 4, "row")
