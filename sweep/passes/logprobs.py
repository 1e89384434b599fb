"""Next-token log-probabilities a block of positions at a time, and what the passes read from
them: per-token loss, the FP top-k, and the KL of a compressed model against it."""

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from sae_lens import SAE

from sweep.base.errors import QfeatError
from sweep.passes.topk import row_topk

# Log-probs are taken a block of positions at a time, about this many entries (16 MB) per block.
BLOCK_ENTRIES = 1 << 22


@dataclass
class LossTotals:
    """Summed next-token cross-entropy (nats, float64) and the number of predicted tokens."""

    total: float = 0.0
    count: int = 0

    def add(self, nll: torch.Tensor) -> None:
        """Accumulate a tensor of per-token negative log-likelihoods."""
        self.total += float(nll.to(torch.float64).sum())
        self.count += nll.numel()

    @property
    def mean(self) -> float:
        """Mean cross-entropy per predicted token."""
        return self.total / self.count

    @property
    def perplexity(self) -> float:
        """exp(mean next-token cross-entropy)."""
        return float(torch.tensor(self.mean, dtype=torch.float64).exp())


def next_token_logprobs(logits: torch.Tensor) -> torch.Tensor:
    """Log-probabilities of the next token at every predicting position, in float32.

    Taken over the whole (contiguous) logits and then sliced: the same values as over the
    sliced logits, without first copying them.
    """
    return torch.log_softmax(logits.float(), dim=-1)[:, :-1]


def next_token_nll(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Per-position NLL of tokens[:, 1:] under logits[:, :-1], in float32 (log-probs taken
    a block at a time: `logprob_blocks`)."""
    nll = logits.new_empty(tokens.shape[0], tokens.shape[1] - 1, dtype=torch.float32)
    for seq, pos, _, block_nll in logprob_blocks(logits, tokens):
        nll[seq, pos] = block_nll
    return nll


def logprob_blocks(
    logits: torch.Tensor, tokens: torch.Tensor
) -> Iterator[tuple[int, slice, torch.Tensor, torch.Tensor]]:
    """(sequence, positions, next-token log-probs [positions, vocab], their NLL) over the
    predicting positions of a batch, a block of positions at a time.

    The log-softmax is taken row by row, so its values equal `next_token_logprobs`'; but no
    [tokens, vocab] log-prob tensor is ever allocated, and each block is still in cache when
    its NLL, top-k or KL is read from it.
    """
    seq_len, vocab = logits.shape[1], logits.shape[2]
    block = max(1, BLOCK_ENTRIES // vocab)
    for i in range(logits.shape[0]):
        for start in range(0, seq_len - 1, block):
            pos = slice(start, min(start + block, seq_len - 1))
            logprobs = torch.log_softmax(logits[i, pos].float(), dim=-1)
            targets = tokens[i, pos.start + 1 : pos.stop + 1, None]
            yield i, pos, logprobs, -logprobs.gather(-1, targets).squeeze(-1)


def require_finite(tensor: torch.Tensor, where: str, side: str, batch: int) -> None:
    """Refuse to measure NaN/inf: a result built on them would look valid and be wrong."""
    if not torch.isfinite(tensor).all():
        raise QfeatError(f"non-finite values at {where} in the {side} model (batch {batch})")


def encode_codes(sae: SAE, acts: torch.Tensor, first: int) -> torch.Tensor:
    """SAE codes of [batch, pos, d_in] activations from position `first` on: [tokens, d_sae]."""
    x = acts[:, first:].to(sae.W_enc.dtype)
    return sae.encode(x.reshape(-1, x.shape[-1]))


def batches(tokens: torch.Tensor, batch_size: int) -> Iterator[torch.Tensor]:
    """Consecutive row blocks of the token set."""
    for start in range(0, len(tokens), batch_size):
        yield tokens[start : start + batch_size]


def topk_logprobs(logprobs: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k next-token log-probabilities (sorted descending) and their int32 ids."""
    values, ids = row_topk(logprobs, k)
    return values, ids.to(torch.int32)


def bucketed_kl(
    fp_top: torch.Tensor, fp_ids: torch.Tensor, q_logprobs: torch.Tensor
) -> torch.Tensor:
    """KL(P_fp ‖ P_q) over the FP top-k tokens plus one bucket holding all other tokens.

    By the data-processing inequality this is a lower bound of the full-vocabulary KL, and it is
    exact when k covers the vocabulary. It needs only the FP top-k, so FP logits are never kept.
    """
    q = q_logprobs.gather(-1, fp_ids.long())
    p_top = fp_top.exp()
    head = (p_top * (fp_top - q)).sum(-1)
    tail_p = (1 - p_top.sum(-1)).clamp_min(0)
    tail_q = (1 - q.exp().sum(-1)).clamp_min(1e-30)
    return head + torch.xlogy(tail_p, tail_p) - torch.xlogy(tail_p, tail_q)


def kl_method(k: int, vocab: int) -> str:
    """How the reported KL was computed."""
    if k >= vocab:
        return f"exact (top-{k} covers the {vocab}-token vocabulary)"
    return f"top-{k} + tail bucket (lower bound of the exact KL; vocabulary {vocab})"
