"""Find the pruning sparsity whose perplexity matches a target (e.g. an RTN model's)."""

from collections.abc import Callable

from sweep.results.summary import MatchResult


def match_sparsity(
    ppl_at: Callable[[float], float],
    target_ppl: float,
    rel_tol: float = 0.01,
    max_steps: int = 20,
    max_sparsity: float = 0.95,
) -> MatchResult:
    """Bisect sparsity in [0, max_sparsity] for the perplexity crossing `target_ppl`.

    The tolerance is relative to the perplexity increase being matched, target − ppl(0):
    converged when |ppl(s) − target| ≤ rel_tol × (target − ppl(0)). (A tolerance relative to
    the perplexity itself would accept the unpruned model whenever the compressed model costs
    less than rel_tol of perplexity, as 8-bit RTN always does.) Assumes perplexity grows with
    sparsity, as magnitude pruning does in practice; each evaluation counts as a step. A target
    outside the reachable range returns the nearer end, not converged, with the reason.
    """
    history: list[tuple[float, float]] = []

    def evaluate(s: float) -> float:
        ppl = ppl_at(s)
        history.append((s, ppl))
        return ppl

    base = evaluate(0.0)
    gap = target_ppl - base
    tol = rel_tol * abs(gap)
    reason = None
    if gap <= 0:
        reason = "target perplexity is at or below the unpruned model's: pruning cannot match it"
    elif evaluate(max_sparsity) < target_ppl:
        reason = f"target perplexity is above the model pruned to {max_sparsity}"
    else:
        lo, hi = 0.0, max_sparsity
        while len(history) < max_steps:
            mid = (lo + hi) / 2
            ppl = evaluate(mid)
            if abs(ppl - target_ppl) <= tol:
                break
            lo, hi = (mid, hi) if ppl < target_ppl else (lo, mid)
    sparsity, ppl = min(history, key=lambda h: abs(h[1] - target_ppl))
    rel_error = abs(ppl - target_ppl) / abs(gap) if gap else 0.0
    return MatchResult(
        target_ppl=target_ppl,
        base_ppl=base,
        sparsity=sparsity,
        ppl=ppl,
        rel_error=rel_error,
        converged=gap > 0 and rel_error <= rel_tol,
        steps=len(history),
        history=history,
        reason=reason,
    )
