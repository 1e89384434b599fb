"""Per-block statistics against numpy on each block's dense codes, and the stream's totals."""

import numpy as np
import pytest
import torch

from helpers import pairs_from_dense
from sweep.passes.blocks import BlockMoments, block_of_sequence
from sweep.passes.stats import PairStats


def test_blocks_are_contiguous_whole_sequences_of_near_equal_size() -> None:
    for n_seq, n_blocks in ((128, 32), (10, 4), (3, 8), (7, 7), (1, 32)):
        blocks = block_of_sequence(n_seq, n_blocks).numpy()
        sizes = np.bincount(blocks)
        assert len(sizes) == min(n_seq, n_blocks) and (np.diff(blocks) >= 0).all()
        assert sizes.max() - sizes.min() <= 1 and sizes.sum() == n_seq


def codes(n_seq: int, rows: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Sparse ReLU-like FP codes and a noisy compressed copy, [n_seq × rows, d]."""
    rng = np.random.default_rng(seed)
    x = np.maximum(rng.normal(-1.0, 1.0, (n_seq * rows, d)), 0) * rng.uniform(0.5, 20, d)
    y = np.maximum(x + rng.normal(0, 0.4, x.shape) * (x > 0), 0)
    x[:, 0] = 0.0  # never fires
    y[:, 1] = 0.0  # silenced
    x[: 3 * rows, 2] = 0.0  # fires only after the first three sequences
    return x, y


@pytest.mark.parametrize("batch", [1, 3, 5, 11])
def test_block_moments_equal_numpy_per_block(batch: int) -> None:
    """Streamed in batches that straddle block boundaries, each block's moments and counts
    equal numpy's on that block's tokens alone; merged, they equal the whole stream's."""
    n_seq, rows, d, n_blocks = 11, 6, 7, 4
    x, y = codes(n_seq, rows, d)
    seq_block = block_of_sequence(n_seq, n_blocks)
    row_block = seq_block.repeat_interleave(rows)
    blocks, total = BlockMoments.zeros(n_blocks, d), PairStats.zeros(d)
    for lo in range(0, n_seq, batch):
        hi = min(lo + batch, n_seq)
        pairs = pairs_from_dense(
            torch.from_numpy(x[lo * rows : hi * rows]), torch.from_numpy(y[lo * rows : hi * rows])
        )
        blocks.add(pairs, row_block[lo * rows : hi * rows])
        total.add(pairs)
    for b in range(n_blocks):
        mask = (row_block == b).numpy()
        xb, yb = x[mask], y[mask]
        assert blocks.n[b] == mask.sum()
        np.testing.assert_allclose(blocks.mean_x[b].numpy(), xb.mean(0), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(blocks.mean_y[b].numpy(), yb.mean(0), rtol=1e-12, atol=1e-15)
        dx, dy = xb - xb.mean(0), yb - yb.mean(0)
        for name, want in (("m2_x", dx * dx), ("m2_y", dy * dy), ("c_xy", dx * dy)):
            got = getattr(blocks, name)[b].numpy()
            np.testing.assert_allclose(got, want.sum(0), rtol=1e-10, atol=1e-10)
        np.testing.assert_array_equal(blocks.active_x[b].numpy(), (xb > 0).sum(0))
        np.testing.assert_array_equal(blocks.active_y[b].numpy(), (yb > 0).sum(0))
    np.testing.assert_array_equal(blocks.active_x.sum(0).numpy(), total.active_x.numpy())
    assert float(blocks.n.sum()) == total.n
