"""Perplexity beyond the measurement pass: independent chunks and sliding-window evaluation.

Both take `logits_fn(tokens[b, t]) -> logits[b, t, vocab]`, so they score an HF model
(`lambda t: hf(t).logits`) and a HookedTransformer alike.
"""

from collections.abc import Callable

import torch

from sweep.measure import LossTotals, batches, next_token_nll

LogitsFn = Callable[[torch.Tensor], torch.Tensor]


@torch.no_grad()
def chunked_loss(logits_fn: LogitsFn, tokens: torch.Tensor, batch_size: int) -> LossTotals:
    """Next-token loss over independent fixed-length sequences [n, seq_len]."""
    totals = LossTotals()
    for batch in batches(tokens, batch_size):
        totals.add(next_token_nll(logits_fn(batch), batch))
    return totals


@torch.no_grad()
def sliding_window_loss(
    logits_fn: LogitsFn,
    stream: torch.Tensor,
    window: int,
    stride: int,
    bos_id: int,
    batch_size: int = 8,
) -> LossTotals:
    """Loss of every token of a 1-D stream, each scored once with up to window−1 tokens of context.

    Windows of BOS + (window − 1) stream tokens start every `stride` tokens; each window scores
    only the tokens no earlier window scored, as in the HF perplexity guide. Windows of equal
    length are evaluated in batches.
    """
    body = window - 1
    if not 1 <= stride <= body:
        raise ValueError(f"stride must be in 1..{body} for window {window}, got {stride}")
    spans = []  # (begin, end, index of the first newly scored token within the window)
    scored_until = 0
    for begin in range(0, len(stream), stride):
        end = min(begin + body, len(stream))
        spans.append((begin, end, scored_until - begin))
        scored_until = end
        if end == len(stream):
            break
    totals = LossTotals()
    bos = torch.tensor([bos_id], device=stream.device)
    full = [s for s in spans if s[1] - s[0] == body]
    for group in [full[i : i + batch_size] for i in range(0, len(full), batch_size)] + [
        [s] for s in spans if s[1] - s[0] != body
    ]:
        ids = torch.stack([torch.cat([bos, stream[b:e]]) for b, e, _ in group])
        nll = next_token_nll(logits_fn(ids), ids)
        for row, (_, _, first_new) in zip(nll, group, strict=True):
            totals.add(row[first_new:])
    return totals
