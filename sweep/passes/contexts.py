"""Top activating contexts per feature, kept while streaming: O(d_sae × k) memory.

For each feature the measurement pass keeps the k token rows where the FP activation is largest
and, separately, the k rows where the compressed activation is largest, each with both
activations at that row. With the token set written beside them, a report can show what a
damaged feature fired on before and after compression without re-running any model.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from sweep.passes.sparse import Pairs


@dataclass
class TopRows:
    """Per feature, the k largest values of one activation seen so far, their rows, and the
    other side's activation at those rows. Unfilled slots hold -inf and row -1."""

    values: torch.Tensor
    other: torch.Tensor
    rows: torch.Tensor

    @classmethod
    def empty(cls, d_sae: int, k: int, device: torch.device | str = "cpu") -> "TopRows":
        """No rows seen yet."""
        return cls(
            values=torch.full((d_sae, k), -torch.inf, device=device),
            other=torch.zeros(d_sae, k, device=device),
            rows=torch.full((d_sae, k), -1, dtype=torch.int64, device=device),
        )

    def add(
        self, rows: torch.Tensor, cols: torch.Tensor, ranked: torch.Tensor, other: torch.Tensor
    ) -> None:
        """Merge one batch's entries: per entry its token row (seq-major over the token set),
        its feature, the ranked activation and the other side's. Only positive activations can
        be a context; an entry is kept if it beats its feature's current k-th value, so after
        the first batches few entries reach the per-feature selection."""
        k = self.values.shape[1]
        ranked = ranked.float()
        kth = self.values[:, -1].index_select(0, cols)  # each entry's feature's k-th value
        keep = ((ranked > 0) & (ranked > kth)).nonzero().squeeze(1)
        if keep.numel() == 0:
            return
        rows, cols, ranked, other = (t.index_select(0, keep) for t in (rows, cols, ranked, other))
        # One sort by feature, then value descending: a positive float's bits order as its value.
        key = (cols << 32) | (0x7FFFFFFF - ranked.view(torch.int32)).to(torch.int64)
        order = key.argsort()
        rows, cols, ranked, other = (t.index_select(0, order) for t in (rows, cols, ranked, other))
        features, counts = torch.unique_consecutive(cols, return_counts=True)
        segment = torch.repeat_interleave(torch.arange(len(features), device=cols.device), counts)
        slot = torch.arange(len(cols), device=cols.device) - (counts.cumsum(0) - counts)[segment]
        top = (slot < k).nonzero().squeeze(1)
        segment, slot = segment.index_select(0, top), slot.index_select(0, top)

        def candidates(values: torch.Tensor, fill) -> torch.Tensor:
            out = torch.full((len(features), k), fill, dtype=values.dtype, device=values.device)
            out[segment, slot] = values.index_select(0, top)
            return out

        merged_values = torch.cat(
            [self.values.index_select(0, features), candidates(ranked, -torch.inf)], 1
        )
        merged_other = torch.cat(
            [self.other.index_select(0, features), candidates(other.float(), 0.0)], 1
        )
        merged_rows = torch.cat([self.rows.index_select(0, features), candidates(rows, -1)], 1)
        values, best = merged_values.topk(k, dim=1)
        self.values.index_copy_(0, features, values)
        self.other.index_copy_(0, features, merged_other.gather(1, best))
        self.rows.index_copy_(0, features, merged_rows.gather(1, best))


@dataclass
class Contexts:
    """Top-k rows by FP and by compressed activation for one SAE."""

    by_fp: TopRows
    by_q: TopRows

    @classmethod
    def empty(cls, d_sae: int, k: int, device: torch.device | str = "cpu") -> "Contexts":
        """No rows seen yet."""
        return cls(TopRows.empty(d_sae, k, device), TopRows.empty(d_sae, k, device))

    def add(self, pairs: Pairs, row_offset: int) -> None:
        """Merge one batch given as its nonzero entries (sweep.passes.sparse.Pairs), its rows
        numbered from `row_offset` in the token set's seq-major order."""
        rows = pairs.rows + row_offset
        self.by_fp.add(rows, pairs.cols, pairs.x, pairs.y)
        self.by_q.add(rows, pairs.cols, pairs.y, pairs.x)

    def frame(self, sae: str, rows_per_seq: int, first: int, features=None) -> pd.DataFrame:
        """Long table: one row per (feature, ranking, rank) where the ranked activation > 0.

        `seq` and `pos` locate the token in the token set ([n_sequences, seq_len]); `features`
        restricts the table (e.g. to active features).
        """
        parts = []
        for ranked_by, top, fp_is_ranked in (("fp", self.by_fp, True), ("q", self.by_q, False)):
            values, other, rows = (t.cpu().numpy() for t in (top.values, top.other, top.rows))
            feature, rank = np.nonzero(values > 0)
            if features is not None:
                keep = np.isin(feature, np.asarray(features))
                feature, rank = feature[keep], rank[keep]
            row = rows[feature, rank]
            ranked, paired = values[feature, rank], other[feature, rank]
            parts.append(
                pd.DataFrame(
                    {
                        "sae": sae,
                        "feature": feature.astype(np.int64),
                        "ranked_by": ranked_by,
                        "rank": rank.astype(np.int64),
                        "seq": (row // rows_per_seq).astype(np.int64),
                        "pos": (row % rows_per_seq + first).astype(np.int64),
                        "fp_act": (ranked if fp_is_ranked else paired).astype(np.float64),
                        "q_act": (paired if fp_is_ranked else ranked).astype(np.float64),
                    }
                )
            )
        return pd.concat(parts, ignore_index=True)
