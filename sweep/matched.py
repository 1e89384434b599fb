"""Find the pruning sparsity whose perplexity matches a target (e.g. an RTN model's)."""

from collections.abc import Callable
from dataclasses import asdict, dataclass, field


@dataclass
class MatchResult:
    """Outcome of the search; `sparsity` is the closest found even when not converged."""

    target_ppl: float
    sparsity: float
    ppl: float
    rel_error: float
    converged: bool
    steps: int
    history: list[tuple[float, float]] = field(default_factory=list)

    def as_dict(self) -> dict:
        """JSON-ready fields."""
        return asdict(self)


def match_sparsity(
    ppl_at: Callable[[float], float],
    target_ppl: float,
    rel_tol: float = 0.01,
    max_steps: int = 20,
    max_sparsity: float = 0.95,
) -> MatchResult:
    """Bisect sparsity in [0, max_sparsity] until |ppl − target| / target ≤ rel_tol.

    Assumes perplexity grows with sparsity (true of magnitude pruning in practice); each
    evaluation counts as a step. If the target lies outside the reachable range, the nearer
    end is returned with converged=False.
    """
    history: list[tuple[float, float]] = []

    def evaluate(s: float) -> float:
        ppl = ppl_at(s)
        history.append((s, ppl))
        return ppl

    def within(ppl: float) -> bool:
        return abs(ppl - target_ppl) / target_ppl <= rel_tol

    lo, hi = 0.0, max_sparsity
    ends_miss = not (within(evaluate(lo)) or within(evaluate(hi)))
    if ends_miss and history[0][1] < target_ppl < history[1][1]:
        while len(history) < max_steps:
            mid = (lo + hi) / 2
            ppl = evaluate(mid)
            if within(ppl):
                break
            lo, hi = (mid, hi) if ppl < target_ppl else (lo, mid)
    sparsity, ppl = min(history, key=lambda h: abs(h[1] - target_ppl))
    rel_error = abs(ppl - target_ppl) / target_ppl
    return MatchResult(
        target_ppl=target_ppl,
        sparsity=sparsity,
        ppl=ppl,
        rel_error=rel_error,
        converged=rel_error <= rel_tol,
        steps=len(history),
        history=history,
    )
