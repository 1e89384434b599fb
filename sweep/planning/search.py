"""The precision search as pure functions: estimate features' r for a bit assignment from the
single-part damages (additive), and raise bits greedily until the estimate meets the target.

Additive model: 1 − r_est(f) = Σ_parts (1 − r_part(f)), where r_part is the r a job
compressing only that part at its assigned width measured (0 damage at the widest candidate,
which is not measured alone). Once a real mixed job is verified, each feature's sum is scaled
by what that job showed (verified damage / estimated damage: the damages of several parts
combine sub-additively on the embedded model, docs/plan.md), so the estimate reproduces the
verified job exactly there. ΔPPL is estimated the same way, corrected by an offset.
"""

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Target:
    """What a plan must reach; None: no such requirement."""

    min_survived: float | None = None  # fraction of active features with r >= survived_r
    min_watched_r: float | None = None  # every watched feature's r
    max_delta_ppl: float | None = None
    survived_r: float = 0.9  # the survival class threshold (survival.survived)


@dataclass(frozen=True)
class Problem:
    """Single-part measurements of P parts at B candidate widths over F active features."""

    bits: tuple[int, ...]  # candidate widths, ascending
    weights: np.ndarray  # [P] number of weights of each part
    damage: np.ndarray  # [P, B, F] 1 − r with only that part at that width
    delta_ppl: np.ndarray  # [P, B] ΔPPL with only that part at that width
    watched: np.ndarray  # [F] bool: a watched feature


@dataclass(frozen=True)
class Outcome:
    """A measured or estimated result of an assignment, in the target's terms."""

    r: np.ndarray  # [F]
    delta_ppl: float
    survived_r: float
    watched: np.ndarray  # [F] bool

    @property
    def frac_survived(self) -> float:
        """Fraction of the features with r at or above the survival threshold."""
        return float((self.r >= self.survived_r).mean()) if self.r.size else 1.0

    @property
    def watched_min_r(self) -> float | None:
        """The smallest r of a watched feature (None: none watched)."""
        return float(self.r[self.watched].min()) if self.watched.any() else None


@dataclass(frozen=True)
class Offsets:
    """A verified job's correction of the additive estimate: each feature's summed damage
    times `scale`, plus `r` (where the sum is ~0 and no ratio exists), and ΔPPL plus
    `delta_ppl`."""

    r: np.ndarray | float = 0.0
    delta_ppl: float = 0.0
    scale: np.ndarray | float = 1.0

    @classmethod
    def verified(cls, estimated: "Outcome", verified: "Outcome") -> "Offsets":
        """The correction that makes the estimate equal a verified job's result."""
        est_damage, damage = 1.0 - estimated.r, 1.0 - verified.r
        ratio = est_damage > 1e-9
        scale = np.where(ratio, damage / np.where(ratio, est_damage, 1.0), 1.0)
        return cls(
            r=np.where(ratio, 0.0, verified.r - estimated.r),
            delta_ppl=verified.delta_ppl - estimated.delta_ppl,
            scale=scale,
        )


@dataclass
class Greedy:
    """The greedy search's answer: widths per part (indices into Problem.bits) and each raise."""

    levels: np.ndarray
    met: bool
    steps: list[tuple[int, int]] = field(default_factory=list)  # (part, new level)


def estimate(problem: Problem, levels: np.ndarray, offsets: Offsets, survived_r: float) -> Outcome:
    """The additive estimate of an assignment (`levels`: a candidate index per part), with a
    verified job's correction."""
    parts = np.arange(len(levels))
    damage = problem.damage[parts, levels].sum(axis=0) * offsets.scale
    ppl = float(problem.delta_ppl[parts, levels].sum())
    return Outcome(1.0 - damage + offsets.r, ppl + offsets.delta_ppl, survived_r, problem.watched)


def shortfall(outcome: Outcome, target: Target) -> tuple[float, float]:
    """How far an outcome is from the target: the summed deficits (0: met), and a smooth
    tie-break (the features' summed damage below each threshold, and the ΔPPL excess) that
    still moves when no feature crosses a threshold."""
    deficit, smooth = 0.0, 0.0
    if target.min_survived is not None:
        deficit += max(0.0, target.min_survived - outcome.frac_survived)
        smooth += float(np.clip(target.survived_r - outcome.r, 0.0, None).sum())
    if target.min_watched_r is not None and outcome.watched.any():
        low = np.clip(target.min_watched_r - outcome.r[outcome.watched], 0.0, None)
        deficit += float(low.max())
        smooth += float(low.sum())
    if target.max_delta_ppl is not None:
        excess = max(0.0, outcome.delta_ppl - target.max_delta_ppl)
        deficit += excess / max(abs(target.max_delta_ppl), 1e-9)
        smooth += excess
    return deficit, smooth


def slack(outcome: Outcome, target: Target) -> tuple[float, float]:
    """How much room an outcome that meets the target leaves: the summed margins (survival
    fraction, watched r, ΔPPL relative to its bound), and the features' summed damage plus
    ΔPPL (smaller is better) for a tie-break."""
    margin = 0.0
    if target.min_survived is not None:
        margin += outcome.frac_survived - target.min_survived
    if target.min_watched_r is not None and outcome.watched.any():
        margin += float(outcome.r[outcome.watched].min()) - target.min_watched_r
    if target.max_delta_ppl is not None:
        margin += (target.max_delta_ppl - outcome.delta_ppl) / max(abs(target.max_delta_ppl), 1e-9)
    return margin, -float((1.0 - outcome.r).sum()) - outcome.delta_ppl


def meets(outcome: Outcome, target: Target) -> bool:
    """Whether an outcome reaches every requirement of the target."""
    return shortfall(outcome, target)[0] == 0.0


def cost(problem: Problem, levels: np.ndarray) -> float:
    """Bit-weight of an assignment: Σ bits × n_weights."""
    return float((np.asarray(problem.bits)[levels] * problem.weights).sum())


def greedy(
    problem: Problem, target: Target, start: np.ndarray, offsets: Offsets | None = None
) -> Greedy:
    """From `start`, raise one part a candidate width at a time, the raise with the best
    estimated gain per added bit-weight (deficit first, the smooth tie-break second), until the
    estimate meets the target or every part is at the widest candidate."""
    offsets = offsets or Offsets()
    levels = np.array(start, dtype=int)
    top = len(problem.bits) - 1
    result = Greedy(levels, False)
    current = shortfall(estimate(problem, levels, offsets, target.survived_r), target)
    while current[0] > 0.0:
        best, best_gain = None, (-np.inf, -np.inf)
        for part in np.flatnonzero(levels < top):
            trial = levels.copy()
            trial[part] += 1
            added = cost(problem, trial) - cost(problem, levels)
            after = shortfall(estimate(problem, trial, offsets, target.survived_r), target)
            gain = ((current[0] - after[0]) / added, (current[1] - after[1]) / added)
            if gain > best_gain:
                best, best_gain = int(part), gain
        if best is None:
            return result
        levels[best] += 1
        result.steps.append((best, int(levels[best])))
        current = shortfall(estimate(problem, levels, offsets, target.survived_r), target)
    result.met = True
    return result


def lower(problem: Problem, target: Target, start: np.ndarray, offsets: Offsets) -> Greedy:
    """From a verified assignment, lower one part a candidate width at a time, the one that
    gives up the least estimated slack per saved bit-weight, while the estimate (corrected by
    what the verified job showed) still meets the target."""
    levels = np.array(start, dtype=int)
    result = Greedy(levels, True)
    while True:
        here = slack(estimate(problem, levels, offsets, target.survived_r), target)
        best, best_loss = None, (np.inf, np.inf)
        for part in np.flatnonzero(levels > 0):
            trial = levels.copy()
            trial[part] -= 1
            after = estimate(problem, trial, offsets, target.survived_r)
            if not meets(after, target):
                continue
            saved = cost(problem, levels) - cost(problem, trial)
            there = slack(after, target)
            loss = ((here[0] - there[0]) / saved, (here[1] - there[1]) / saved)
            if loss < best_loss:
                best, best_loss = int(part), loss
        if best is None:
            return result
        levels[best] -= 1
        result.steps.append((best, int(levels[best])))
