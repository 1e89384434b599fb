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

    def update(self, ranked: torch.Tensor, other: torch.Tensor, row_offset: int) -> None:
        """Merge one batch: `ranked` and `other` are [rows, d_sae], rows numbered from
        `row_offset` in the token set's seq-major order."""
        k = self.values.shape[1]
        values, index = ranked.float().T.topk(min(k, ranked.shape[0]), dim=1)
        merged_values = torch.cat([self.values, values], dim=1)
        merged_other = torch.cat([self.other, other.float().T.gather(1, index)], dim=1)
        merged_rows = torch.cat([self.rows, index + row_offset], dim=1)
        self.values, keep = merged_values.topk(k, dim=1)
        self.other = merged_other.gather(1, keep)
        self.rows = merged_rows.gather(1, keep)


@dataclass
class Contexts:
    """Top-k rows by FP and by compressed activation for one SAE."""

    by_fp: TopRows
    by_q: TopRows

    @classmethod
    def empty(cls, d_sae: int, k: int, device: torch.device | str = "cpu") -> "Contexts":
        """No rows seen yet."""
        return cls(TopRows.empty(d_sae, k, device), TopRows.empty(d_sae, k, device))

    def update(self, fp: torch.Tensor, q: torch.Tensor, row_offset: int) -> None:
        """Merge one batch of paired [rows, d_sae] codes."""
        self.by_fp.update(fp, q, row_offset)
        self.by_q.update(q, fp, row_offset)

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
