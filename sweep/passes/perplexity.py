"""Perplexity beyond the measurement pass: independent chunks and sliding-window evaluation.

Both take `logits_fn(tokens[b, t], logits_to_keep=n) -> logits[b, n or t, vocab]` (the logits
of the last n positions; 0: all), as `sweep.inputs.hooked.HookedLM` and HF causal LMs compute them.
"""

from collections.abc import Callable

import torch

from sweep.passes.logprobs import LossTotals, batches, next_token_nll

LogitsFn = Callable[..., torch.Tensor]


@torch.no_grad()
def chunked_loss(logits_fn: LogitsFn, tokens: torch.Tensor, batch_size: int) -> LossTotals:
    """Next-token loss over independent fixed-length sequences [n, seq_len]."""
    totals = LossTotals()
    for batch in batches(tokens, batch_size):
        totals.add(next_token_nll(logits_fn(batch), batch))
    return totals


def window_spans(length: int, body: int, stride: int) -> list[tuple[int, int, int]]:
    """(begin, end, index of the first newly scored token within the window) of every window."""
    if not 1 <= stride <= body:
        raise ValueError(f"stride must be in 1..{body} for window {body + 1}, got {stride}")
    spans = []
    scored_until = 0
    for begin in range(0, length, stride):
        end = min(begin + body, length)
        spans.append((begin, end, scored_until - begin))
        scored_until = end
        if end == length:
            break
    return spans


@torch.no_grad()
def sliding_window_loss(
    logits_fn: LogitsFn,
    stream: torch.Tensor,
    window: int,
    stride: int,
    bos_id: int,
    batch_size: int = 8,
    chunk_nll: torch.Tensor | None = None,
) -> LossTotals:
    """Loss of every token of a 1-D stream, each scored once with up to window−1 tokens of context.

    Windows of BOS + (window − 1) stream tokens start every `stride` tokens; each window scores
    only the tokens no earlier window scored, as in the HF perplexity guide. Windows of equal
    length are evaluated in batches, with logits computed only from the first position whose
    prediction is scored. `chunk_nll` [n, window − 1], when given, is the per-token loss already
    computed of the stream's consecutive BOS-prefixed chunks (the measured sequences): a window
    that is one of those chunks is not run again.
    """
    body = window - 1
    spans = window_spans(len(stream), body, stride)

    def measured(begin: int, end: int) -> bool:
        """Whether this window is one of the chunks `chunk_nll` already scored."""
        return (
            chunk_nll is not None
            and begin % body == 0
            and end - begin == body
            and begin // body < len(chunk_nll)
        )

    totals = LossTotals()
    for b, e, first_new in spans:
        if measured(b, e):
            totals.add(chunk_nll[b // body][first_new:])
    todo = [s for s in spans if not measured(s[0], s[1])]
    bos = torch.tensor([bos_id], device=stream.device)
    full = [s for s in todo if s[1] - s[0] == body]
    for group in [full[i : i + batch_size] for i in range(0, len(full), batch_size)] + [
        [s] for s in todo if s[1] - s[0] != body
    ]:
        ids = torch.stack([torch.cat([bos, stream[b:e]]) for b, e, _ in group])
        start = min(first_new for _, _, first_new in group)  # first scored prediction
        logits = logits_fn(ids, logits_to_keep=ids.shape[1] - start)
        nll = next_token_nll(logits, ids[:, start:])
        for row, (_, _, first_new) in zip(nll, group, strict=True):
            totals.add(row[first_new - start :])
    return totals


def sliding_perplexity(
    logits_fn: LogitsFn,
    tokens: torch.Tensor,
    stride: int,
    bos_id: int,
    nll: torch.Tensor | None = None,
) -> float:
    """Sliding-window perplexity over the measured BOS-prefixed sequences [n, seq_len] read as
    one stream; `nll`, the measurement pass's per-token loss, scores the windows that are
    measured sequences."""
    stream = tokens[:, 1:].reshape(-1)
    known = nll if nll is not None and bool((tokens[:, 0] == bos_id).all()) else None
    loss = sliding_window_loss(logits_fn, stream, tokens.shape[1], stride, bos_id, chunk_nll=known)
    return loss.perplexity
