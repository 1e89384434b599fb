"""The blocked row-wise top-k equals torch.topk: values exactly, indices up to ties."""

import pytest
import torch

from sweep.passes.topk import row_topk


@pytest.mark.parametrize(
    ("shape", "k"),
    [((3, 5, 2048), 128), ((4, 50304), 128), ((2, 7, 1001), 1), ((6, 257), 16), ((3, 100), 8)],
)
def test_row_topk_equals_torch_topk(shape: tuple[int, ...], k: int) -> None:
    g = torch.Generator().manual_seed(sum(shape) + k)
    x = torch.randn(*shape, generator=g) * 3
    rows = x.view(-1, shape[-1])
    rows[0] = 1.0  # every entry tied
    rows[1, ::3] = -torch.inf
    rows[-1, -1] = 50.0  # the maximum in the ragged tail
    if len(shape) == 3:  # a strided view, as next_token_logprobs returns
        x = torch.cat([x, x[:, :1]], dim=1)[:, :-1]
    values, ids = row_topk(x, k)
    expected = x.topk(k, dim=-1).values
    assert torch.equal(values, expected)
    assert ids.dtype == torch.int64
    assert torch.equal(x.gather(-1, ids), values)
    assert (ids.sort(-1).values.diff(dim=-1) > 0).all()  # k distinct entries per row


def test_row_topk_without_numpy_dtype_is_torch_topk() -> None:
    x = torch.randn(3, 4096, generator=torch.Generator().manual_seed(5)).bfloat16()
    values, ids = row_topk(x, 128)
    assert torch.equal(values, x.topk(128, dim=-1).values)
    assert torch.equal(x.gather(-1, ids), values)
