"""Magnitude pruning: exact counts, deterministic ties, per-matrix and global scope."""

import pytest
import torch

from sweep.base.errors import QfeatError
from sweep.compressors.magnitude import magnitude_masks, n_pruned, prune_


def tied_weights() -> list[torch.Tensor]:
    """Matrices with many tied magnitudes (incl. ± pairs) and pre-existing zeros."""
    g = torch.Generator().manual_seed(0)
    a = torch.randint(-3, 4, (16, 10), generator=g).float()  # values in -3..3: heavy ties, zeros
    b = torch.randn(7, 13, generator=g)
    b[0, :5] = 0.0
    b[1, :] = 0.25
    b[2, :] = -0.25
    c = torch.full((5, 4), 1.0)  # all tied
    return [a, b, c]


@pytest.mark.parametrize("sparsity", [0.0, 0.1, 0.3, 0.5, 0.77, 0.95, 0.999])
def test_matrix_scope_prunes_exact_count_of_smallest(sparsity: float) -> None:
    weights = tied_weights()
    masks = magnitude_masks(weights, sparsity, scope="matrix")
    for w, keep in zip(weights, masks, strict=True):
        assert keep.dtype == torch.bool and keep.shape == w.shape
        k = n_pruned(w.numel(), sparsity)
        assert int((~keep).sum()) == k
        if 0 < k < w.numel():  # every pruned |w| ≤ every kept |w|
            assert w[~keep].abs().max() <= w[keep].abs().min()


@pytest.mark.parametrize("sparsity", [0.0, 0.2, 0.5, 0.9])
def test_global_scope_prunes_exact_total_of_smallest(sparsity: float) -> None:
    weights = tied_weights()
    masks = magnitude_masks(weights, sparsity, scope="global")
    total = sum(w.numel() for w in weights)
    assert sum(int((~m).sum()) for m in masks) == round(sparsity * total)
    pruned = torch.cat([w[~m].abs() for w, m in zip(weights, masks, strict=True)])
    kept = torch.cat([w[m].abs() for w, m in zip(weights, masks, strict=True)])
    if len(pruned) and len(kept):
        assert pruned.max() <= kept.min()


def test_global_differs_from_matrix_when_scales_differ() -> None:
    small, large = torch.randn(10, 10) * 0.01, torch.randn(10, 10) * 100
    masks = magnitude_masks([small, large], 0.5, scope="global")
    assert int((~masks[0]).sum()) == 100 and int((~masks[1]).sum()) == 0


def test_ties_broken_by_flat_index_then_matrix_order() -> None:
    w = torch.ones(2, 5)
    (keep,) = magnitude_masks([w], 0.3)
    assert keep.reshape(-1).tolist() == [False] * 3 + [True] * 7
    a, b = torch.ones(4), torch.ones(4)
    ka, kb = magnitude_masks([a, b], 0.75, scope="global")  # 6 of 8: all of a, first 2 of b
    assert ka.tolist() == [False] * 4 and kb.tolist() == [False, False, True, True]


def test_deterministic_and_dtype_independent() -> None:
    w = torch.randn(32, 32).to(torch.bfloat16)
    m1 = magnitude_masks([w], 0.6)[0]
    m2 = magnitude_masks([w.clone()], 0.6)[0]
    m3 = magnitude_masks([w.float()], 0.6)[0]
    assert torch.equal(m1, m2) and torch.equal(m1, m3)


def test_pre_existing_zeros_are_pruned_first() -> None:
    w = torch.arange(1.0, 21.0)
    w[[3, 7, 11]] = 0.0
    (keep,) = magnitude_masks([w], 0.25)  # 5 entries: the 3 zeros then the two smallest
    assert (~keep).nonzero().squeeze(1).tolist() == [0, 1, 3, 7, 11]
    (keep,) = magnitude_masks([w], 0.1)  # 2 entries: zeros only, lowest flat index first
    assert (~keep).nonzero().squeeze(1).tolist() == [3, 7]


@pytest.mark.parametrize("scope", ["matrix", "global"])
def test_prune_in_place_changes_only_given_tensors(scope: str) -> None:
    weights = [torch.nn.Parameter(w) for w in tied_weights()]
    other = torch.randn(8, 8)
    before = [w.detach().clone() for w in weights]
    other_before = other.clone()
    masks = magnitude_masks(weights, 0.4, scope=scope)
    masked = prune_(weights, 0.4, scope=scope)
    assert masked == sum(int((~m).sum()) for m in masks)
    for w, b, m in zip(weights, before, masks, strict=True):
        assert torch.equal(w.detach(), torch.where(m, b, torch.zeros_like(b)))
        assert int((w == 0).sum()) == max(int((~m).sum()), int((b == 0).sum()))
    assert torch.equal(other, other_before)


def test_zero_sparsity_is_identity() -> None:
    weights = tied_weights()
    before = [w.clone() for w in weights]
    for scope in ("matrix", "global"):
        assert all(bool(m.all()) for m in magnitude_masks(weights, 0.0, scope=scope))
        assert prune_(weights, 0.0, scope=scope) == 0
    assert all(torch.equal(w, b) for w, b in zip(weights, before, strict=True))


def test_exact_sparsity_counts_zeros_on_continuous_weights() -> None:
    w = torch.randn(64, 48)
    prune_([w], 0.37)
    assert int((w == 0).sum()) == round(0.37 * w.numel())


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, float("nan"), float("inf"), True, "0.5", None])
def test_bad_sparsity_raises(bad: object) -> None:
    with pytest.raises(QfeatError, match="sparsity"):
        magnitude_masks([torch.ones(3)], bad)  # type: ignore[arg-type]
    with pytest.raises(QfeatError, match="sparsity"):
        prune_([torch.ones(3)], bad)  # type: ignore[arg-type]


def test_bad_scope_and_nan_weights_raise() -> None:
    with pytest.raises(QfeatError, match="scope"):
        magnitude_masks([torch.ones(3)], 0.5, scope="row")
    with pytest.raises(QfeatError, match="NaN"):
        magnitude_masks([torch.tensor([1.0, float("nan")])], 0.5)


@pytest.mark.parametrize("scope", ["matrix", "global"])
def test_matches_stable_sort_reference(scope: str) -> None:
    """Masks equal pruning the first k entries of a stable ascending sort of |w|."""
    g = torch.Generator().manual_seed(1)
    for trial in range(50):
        weights = [
            torch.randint(-4, 5, (int(torch.randint(0, 30, (1,), generator=g)),), generator=g) * 0.5
            + (trial % 2) * 1e-3 * torch.randn(1, generator=g)
            for _ in range(3)
        ]
        sparsity = float(torch.rand(1, generator=g)) * 0.99
        masks = magnitude_masks(weights, sparsity, scope=scope)
        groups = [torch.cat(weights)] if scope == "global" else weights
        got = [torch.cat(masks)] if scope == "global" else masks
        for w, keep in zip(groups, got, strict=True):
            ref = torch.ones(w.numel(), dtype=torch.bool)
            ref[torch.sort(w.abs(), stable=True).indices[: round(sparsity * w.numel())]] = False
            assert torch.equal(keep, ref), (trial, scope)
