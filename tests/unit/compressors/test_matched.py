"""The perplexity-matching bisection on known monotone curves."""

import math

import pytest

from sweep.compressors.matched import match_sparsity


def curve(s: float) -> float:
    """A magnitude-pruning-like perplexity curve: flat, then explosive."""
    return 20.0 * math.exp(4.0 * s**3)


@pytest.mark.parametrize("target_sparsity", [0.1, 0.42, 0.77, 0.9])
def test_converges_to_the_matching_sparsity(target_sparsity: float) -> None:
    target = curve(target_sparsity)
    result = match_sparsity(curve, target, rel_tol=1e-3, max_steps=40)
    gap = target - curve(0.0)
    assert result.converged and result.reason is None
    assert abs(curve(result.sparsity) - target) <= 1e-3 * gap
    assert result.sparsity == pytest.approx(target_sparsity, abs=0.02)
    assert result.steps == len(result.history) <= 40


def test_small_perplexity_increase_is_not_matched_by_the_unpruned_model() -> None:
    target = curve(0.05)
    result = match_sparsity(curve, target, rel_tol=0.01)
    assert target / curve(0.0) - 1 < 0.01  # within 1% of the FP perplexity ...
    assert result.converged and result.sparsity > 0.03  # ... yet matched by real pruning


def test_unreachable_target_reports_the_closest_end() -> None:
    result = match_sparsity(curve, 1e6, rel_tol=0.01, max_sparsity=0.95)
    assert not result.converged and "above the model pruned to 0.95" in result.reason
    assert result.sparsity == 0.95 and result.steps == 2


def test_target_below_the_unpruned_model_gives_zero_sparsity() -> None:
    result = match_sparsity(curve, 10.0, rel_tol=0.01)
    assert not result.converged and result.sparsity == 0.0 and result.steps == 1
    assert "cannot match" in result.reason


def test_step_budget_is_respected_and_best_point_kept() -> None:
    target = curve(0.61)
    result = match_sparsity(curve, target, rel_tol=1e-9, max_steps=6)
    assert result.steps == 6 and not result.converged
    best = min(result.history, key=lambda h: abs(h[1] - target))
    assert (result.sparsity, result.ppl) == best
