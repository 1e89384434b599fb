"""Per-block paired statistics for the token bootstrap: the measured sequences are cut into
contiguous blocks of whole sequences (tokens within a sequence, and neighbouring sequences of
one document, are correlated), and each block keeps its own float64 centred co-moments and
firing counts per feature. Memory is O(n_blocks × d_sae), never O(tokens × d_sae); the number
of blocks is bounded by `survival.bootstrap.n_blocks` whatever the token set's size.
"""

from dataclasses import dataclass

import torch

from sweep.passes.sparse import Pairs
from sweep.passes.stats import MOMENTS, chan_merge, entry_moments


def block_of_sequence(n_sequences: int, n_blocks: int) -> torch.Tensor:
    """The block of each sequence: min(n_blocks, n_sequences) contiguous groups of whole
    sequences whose sizes differ by at most one."""
    blocks = max(1, min(n_blocks, n_sequences))
    return torch.arange(n_sequences) * blocks // n_sequences


@dataclass
class BlockMoments:
    """Per block and feature: token count, means and centred co-moments of the paired codes,
    and how many tokens fire (> 0) in FP and in the compressed model."""

    n: torch.Tensor  # [n_blocks] float64 tokens per block
    mean_x: torch.Tensor  # [n_blocks, d] float64, and likewise the four below
    mean_y: torch.Tensor
    m2_x: torch.Tensor
    m2_y: torch.Tensor
    c_xy: torch.Tensor
    active_x: torch.Tensor  # [n_blocks, d] int64
    active_y: torch.Tensor

    @classmethod
    def zeros(cls, n_blocks: int, d: int, device: torch.device | str = "cpu") -> "BlockMoments":
        """Empty statistics for `n_blocks` blocks of `d` features."""
        kw = {"dtype": torch.float64, "device": device}
        counts = {"dtype": torch.int64, "device": device}
        moments = {name: torch.zeros(n_blocks, d, **kw) for name in MOMENTS}
        active = {f"active_{s}": torch.zeros(n_blocks, d, **counts) for s in "xy"}
        return cls(n=torch.zeros(n_blocks, **kw), **moments, **active)

    @property
    def n_blocks(self) -> int:
        """How many blocks."""
        return self.n.shape[0]

    def add(self, pairs: Pairs, row_block: torch.Tensor) -> None:
        """Merge one batch (the union of its nonzero entries) whose row i belongs to block
        `row_block[i]`; a batch's rows cover consecutive blocks (sequences are in order)."""
        if pairs.n_rows == 0:
            return
        d, first = pairs.d, int(row_block[0])
        local = row_block - first
        n_groups = int(local[-1]) + 1
        n_rows = torch.bincount(local, minlength=n_groups).to(torch.float64)
        group = local[pairs.rows]
        keys = group * d + pairs.cols
        x, y = pairs.x.double(), pairs.y.double()
        per_token = n_rows.repeat_interleave(d)
        batch, _ = entry_moments(keys, x, y, n_groups * d, per_token)
        batch = {k: v.view(n_groups, d) for k, v in batch.items()}
        span = slice(first, first + n_groups)
        into = {name: getattr(self, name)[span] for name in MOMENTS}
        chan_merge(into, self.n[span, None], batch, n_rows[:, None])
        self.n[span] += n_rows
        size = n_groups * d
        fx, fy = x > 0, y > 0
        self.active_x[span] += torch.bincount(keys[fx], minlength=size).view(n_groups, d)
        self.active_y[span] += torch.bincount(keys[fy], minlength=size).view(n_groups, d)

    def cpu(self) -> "BlockMoments":
        """A copy on the CPU."""
        return BlockMoments(**{k: v.cpu() for k, v in vars(self).items()})
