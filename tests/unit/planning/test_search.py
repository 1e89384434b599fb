"""The precision search as pure functions: the additive estimate by hand, and greedy against
brute force over every assignment of small synthetic problems (no model)."""

import itertools

import numpy as np
import pytest

from sweep.planning.search import (
    Offsets,
    Outcome,
    Problem,
    Target,
    cost,
    estimate,
    greedy,
    lower,
    meets,
)


def brute_force(problem: Problem, target: Target) -> float | None:
    """The least bit-weight of any assignment whose estimate meets the target (None: none)."""
    best = None
    n_parts, n_bits = problem.damage.shape[:2]
    for levels in itertools.product(range(n_bits), repeat=n_parts):
        levels = np.array(levels)
        if meets(estimate(problem, levels, Offsets(), target.survived_r), target):
            c = cost(problem, levels)
            best = c if best is None else min(best, c)
    return best


def random_problem(rng, n_parts: int, bits: tuple[int, ...], n_features: int, convex: bool):
    """Damage falling with width to 0 at the widest; `convex`: each step gains less than the
    one before it (diminishing returns)."""
    steps = rng.uniform(0.0, 0.2, size=(n_parts, len(bits) - 1, n_features))
    if convex:
        steps = -np.sort(-steps, axis=1)  # larger gains first
    # damage at level j = the gains still to come above j
    damage = np.concatenate(
        [np.flip(np.cumsum(np.flip(steps, 1), 1), 1), np.zeros((n_parts, 1, n_features))], 1
    )
    ppl = damage.mean(axis=2) * 10
    watched = np.zeros(n_features, dtype=bool)
    watched[: max(1, n_features // 4)] = True
    return Problem(bits, rng.integers(1, 5, n_parts).astype(float), damage, ppl, watched)


def test_the_estimate_adds_the_single_part_damages_and_the_offsets() -> None:
    damage = np.array([[[0.1, 0.0], [0.0, 0.0]], [[0.2, 0.3], [0.0, 0.0]]])  # [P=2, B=2, F=2]
    problem = Problem((3, 8), np.array([1.0, 1.0]), damage, np.array([[0.5, 0], [1.0, 0]]),
                      np.array([False, True]))  # fmt: skip
    est = estimate(problem, np.array([0, 0]), Offsets(), 0.9)
    assert est.r.tolist() == pytest.approx([1 - 0.1 - 0.2, 1 - 0.3])
    assert est.delta_ppl == pytest.approx(1.5)
    assert est.watched_min_r == pytest.approx(0.7) and est.frac_survived == 0.0
    shifted = estimate(problem, np.array([1, 0]), Offsets(np.array([0.05, -0.1]), 0.2), 0.9)
    assert shifted.r.tolist() == pytest.approx([0.85, 0.6]) and shifted.delta_ppl == 1.2
    assert cost(problem, np.array([1, 0])) == 11.0


@pytest.mark.parametrize("seed", range(40))
def test_greedy_is_optimal_with_diminishing_returns_and_unit_steps(seed: int) -> None:
    """Unit-width steps, equal part sizes, one watched feature's r, each part's gains
    diminishing: the k best single raises are the best k raises, so greedy is optimal."""
    rng = np.random.default_rng(seed)
    base = random_problem(rng, n_parts=4, bits=(2, 3, 4, 5), n_features=1, convex=True)
    problem = Problem(base.bits, np.ones(4), base.damage, base.delta_ppl, np.array([True]))
    floor = float(estimate(problem, np.zeros(4, int), Offsets(), 0.9).r[0])
    target = Target(min_watched_r=float(rng.uniform(floor, 1.0)))
    found = greedy(problem, target, np.zeros(4, dtype=int))
    assert found.met
    assert cost(problem, found.levels) == brute_force(problem, target)


@pytest.mark.parametrize("seed", range(40))
def test_greedy_meets_every_target_brute_force_can_and_never_beats_it(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    problem = random_problem(rng, n_parts=3, bits=(3, 4, 8), n_features=12, convex=False)
    target = Target(
        min_survived=float(rng.uniform(0.3, 1.0)),
        min_watched_r=float(rng.uniform(0.5, 1.0)) if seed % 2 else None,
        max_delta_ppl=float(rng.uniform(0.0, 2.0)) if seed % 3 == 0 else None,
    )
    best = brute_force(problem, target)
    found = greedy(problem, target, np.zeros(3, dtype=int))
    assert found.met == (best is not None)
    if found.met:
        assert meets(estimate(problem, found.levels, Offsets(), 0.9), target)
        assert cost(problem, found.levels) >= best


def test_greedy_raises_from_its_start_and_reports_each_step() -> None:
    rng = np.random.default_rng(7)
    problem = random_problem(rng, n_parts=3, bits=(3, 4, 8), n_features=6, convex=False)
    start = np.array([1, 0, 2])
    found = greedy(problem, Target(min_survived=1.0), start)
    assert (found.levels >= start).all() and found.met
    assert len(found.steps) == int((found.levels - start).sum())
    assert greedy(problem, Target(min_survived=0.0), start).steps == []


@pytest.mark.parametrize("seed", range(20))
def test_lowering_keeps_the_estimate_meeting_the_target(seed: int) -> None:
    rng = np.random.default_rng(300 + seed)
    problem = random_problem(rng, n_parts=4, bits=(3, 4, 8), n_features=10, convex=False)
    target = Target(min_survived=float(rng.uniform(0.3, 0.9)))
    top = np.full(4, 2)
    offsets = Offsets(rng.uniform(0.0, 0.3, size=10))  # a verified job better than the sum
    found = lower(problem, target, top, offsets)
    assert meets(estimate(problem, found.levels, offsets, 0.9), target)
    assert (found.levels <= top).all() and len(found.steps) == int((top - found.levels).sum())
    for part in np.flatnonzero(found.levels > 0):  # no single further lowering still meets it
        trial = found.levels.copy()
        trial[part] -= 1
        assert not meets(estimate(problem, trial, offsets, 0.9), target)


def test_a_verified_correction_reproduces_the_verified_job_where_it_was_made() -> None:
    rng = np.random.default_rng(5)
    problem = random_problem(rng, n_parts=3, bits=(3, 4, 8), n_features=8, convex=False)
    levels = np.array([0, 1, 2])
    est = estimate(problem, levels, Offsets(), 0.9)
    real_r = 1.0 - (1.0 - est.r) * rng.uniform(0.2, 0.6, size=8)  # sub-additive
    real_r[est.r == 1.0] = 0.97  # no estimated damage: an offset instead of a ratio
    verified = Outcome(real_r, est.delta_ppl + 0.3, 0.9, problem.watched)
    again = estimate(problem, levels, Offsets.verified(est, verified), 0.9)
    assert again.r == pytest.approx(real_r, abs=1e-12)
    assert again.delta_ppl == pytest.approx(verified.delta_ppl)
