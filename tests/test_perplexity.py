"""Sliding-window and chunked perplexity against direct computations."""

import torch

from sweep.measure import LossTotals, next_token_nll
from sweep.perplexity import chunked_loss, sliding_window_loss


class CountingLM(torch.nn.Module):
    """A causal toy LM whose logits depend on the whole prefix (cumulative embedding sums)."""

    def __init__(self, vocab: int = 13) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(vocab, 8)
        self.out = torch.nn.Linear(8, vocab)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.emb(ids).cumsum(1) / torch.arange(1, ids.shape[1] + 1)[None, :, None]
        return self.out(torch.tanh(h))


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
