"""Test-only helpers: dense views of the passes' sparse structures (production code only ever
streams sparse entries)."""

import torch

from sweep.passes.contexts import Contexts
from sweep.passes.reference import Reference, SparseCodes
from sweep.passes.sparse import Pairs
from sweep.passes.stats import PairStats


def pairs_from_dense(x: torch.Tensor, y: torch.Tensor) -> Pairs:
    """The union of two dense [rows, d] code batches' nonzero entries."""
    if x.shape != y.shape or x.dim() != 2:
        raise ValueError(f"paired codes must be equal 2-D shapes, got {x.shape} and {y.shape}")
    rows, cols = ((x != 0) | (y != 0)).nonzero(as_tuple=True)
    return Pairs(rows, cols, x[rows, cols], y[rows, cols], x.shape[0], x.shape[1])


def update_stats(stats: PairStats, x: torch.Tensor, y: torch.Tensor) -> None:
    """Merge a batch of dense FP codes `x` and compressed codes `y` ([tokens, d])."""
    stats.add(pairs_from_dense(x, y))


def update_contexts(contexts: Contexts, fp: torch.Tensor, q: torch.Tensor, offset: int) -> None:
    """Merge one batch of paired dense [rows, d_sae] codes, rows numbered from `offset`."""
    contexts.add(pairs_from_dense(fp, q), offset)


def dense_rows(codes: SparseCodes, start: int, stop: int) -> torch.Tensor:
    """Rows start..stop of sparse codes as a dense [stop − start, d_sae] tensor."""
    flat, values = codes.flat(start, stop)
    out = torch.zeros((stop - start) * codes.d_sae, dtype=codes.values.dtype)
    out[flat] = values
    return out.reshape(stop - start, codes.d_sae)


def sparse_batches() -> list[torch.Tensor]:
    """ReLU-like code batches of uneven sizes, with empty rows."""
    batches = []
    for rows in (5, 1, 7):
        x = torch.relu(torch.randn(rows, 11) - 0.8)
        x[0] = 0.0
        batches.append(x)
    return batches


def make_reference(seed: int = 0) -> Reference:
    """A small FP reference with sparse codes of one hook, seeded."""
    torch.manual_seed(seed)
    batches = sparse_batches()
    return Reference(
        codes={
            "blocks.0.hook_resid_post": SparseCodes.concat(
                [SparseCodes.from_dense(b) for b in batches]
            )
        },
        nll=torch.rand(3, 4),
        topk_logprobs=-torch.rand(3, 4, 2),
        topk_ids=torch.randint(0, 9, (3, 4, 2), dtype=torch.int32),
        sliding_ppl=12.5,
    )
