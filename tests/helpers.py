"""Test-only helpers: dense views of the passes' sparse structures (production code only ever
streams sparse entries)."""

import torch

from sweep.passes.contexts import Contexts
from sweep.passes.reference import SparseCodes
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
