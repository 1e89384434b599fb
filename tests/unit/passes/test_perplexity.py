"""Sliding-window and chunked perplexity against direct computations."""

import torch

from sweep.passes.logprobs import LossTotals, next_token_nll
from sweep.passes.perplexity import chunked_loss, sliding_window_loss


class CountingLM(torch.nn.Module):
    """A causal toy LM whose logits depend on the whole prefix (cumulative embedding sums)."""

    def __init__(self, vocab: int = 13) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(vocab, 8)
        self.out = torch.nn.Linear(8, vocab)

    def forward(self, ids: torch.Tensor, logits_to_keep: int = 0) -> torch.Tensor:
        h = self.emb(ids).cumsum(1) / torch.arange(1, ids.shape[1] + 1)[None, :, None]
        return self.out(torch.tanh(h[:, -logits_to_keep:]))


def brute_force(lm: CountingLM, stream: torch.Tensor, window: int, stride: int) -> LossTotals:
    """Score token i with the context the sliding scheme gives it, one window per token."""
    body = window - 1
    totals = LossTotals()
    starts = list(range(0, len(stream), stride))
    for i in range(len(stream)):
        begin = next(b for b in starts if b <= i < b + body)  # the first window containing i
        ids = torch.cat([torch.tensor([0]), stream[begin : i + 1]])[None]
        totals.add(next_token_nll(lm(ids), ids)[0, -1:])
    return totals


def test_sliding_window_scores_each_token_once_with_its_context() -> None:
    lm = CountingLM()
    stream = torch.randint(1, 13, (61,))
    with torch.no_grad():
        for window, stride in [(16, 5), (16, 15), (9, 1), (32, 32 - 1)]:
            got = sliding_window_loss(lm, stream, window, stride, bos_id=0, batch_size=3)
            expected = brute_force(lm, stream, window, stride)
            assert got.count == len(stream)
            assert abs(got.total - expected.total) < 1e-4


def test_stride_equal_to_body_is_chunked_loss() -> None:
    lm = CountingLM()
    body = 10
    stream = torch.randint(1, 13, (5 * body,))
    chunks = torch.cat([torch.zeros(5, 1, dtype=torch.long), stream.reshape(5, body)], dim=1)
    with torch.no_grad():
        sliding = sliding_window_loss(lm, stream, body + 1, body, bos_id=0)
        chunked = chunked_loss(lm, chunks, batch_size=2)
    assert sliding.count == chunked.count
    assert abs(sliding.total - chunked.total) < 1e-4


def test_windows_that_are_measured_sequences_reuse_their_loss() -> None:
    """A window equal to a measured BOS-prefixed chunk takes the pass's per-token loss instead
    of a forward; every other window is computed as before."""
    lm = CountingLM()
    body = 10
    stream = torch.randint(1, 13, (6 * body,))
    chunks = torch.cat([torch.zeros(6, 1, dtype=torch.long), stream.reshape(6, body)], dim=1)
    calls = []

    def counting(ids: torch.Tensor, logits_to_keep: int = 0) -> torch.Tensor:
        calls.append(len(ids))
        return lm(ids, logits_to_keep)

    with torch.no_grad():
        chunk_nll = next_token_nll(lm(chunks), chunks)
        for stride, forwards in [(body, 0), (5, 5), (3, 16)]:
            plain = sliding_window_loss(lm, stream, body + 1, stride, bos_id=0, batch_size=1)
            calls.clear()
            shared = sliding_window_loss(
                counting, stream, body + 1, stride, bos_id=0, batch_size=1, chunk_nll=chunk_nll
            )
            assert len(calls) == forwards
            assert shared.count == plain.count == len(stream)
            assert abs(shared.total - plain.total) < 1e-4


def test_hf_model_computes_only_the_scored_logits(tiny) -> None:
    """On the real model, logits of the scored positions only (logits_to_keep) give the same
    sliding-window loss as slicing the full logits."""
    stream = tiny.tokens[:4, 1:].reshape(-1)
    window = tiny.tokens.shape[1]

    def full(ids: torch.Tensor, logits_to_keep: int = 0) -> torch.Tensor:
        return tiny.model(ids)[:, -logits_to_keep:]

    with torch.no_grad():
        kept = sliding_window_loss(tiny.model, stream, window, 16, bos_id=int(tiny.tokens[0, 0]))
        sliced = sliding_window_loss(full, stream, window, 16, bos_id=int(tiny.tokens[0, 0]))
    assert kept.count == sliced.count == len(stream)
    assert abs(kept.total - sliced.total) < 1e-3
