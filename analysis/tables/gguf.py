"""The GGUF ladder: per GGUF job, its file (type, bits per weight) and its survival measured two
ways, on qfeat's forward of the file's dequantized weights and on llama.cpp's own forward, with
the log-prob gap between the two (summary.json's `gguf` block)."""

from __future__ import annotations

import pandas as pd

from analysis.load.collect import Collection

GGUF_NAMES = {
    "model": "model",
    "type": "type",
    "imatrix": "imatrix",
    "bits_per_weight": "bits/weight",
    "n_active": "active",
    "pct_survived": "% survived",
    "pct_blurred": "% blurred",
    "pct_destroyed": "% destroyed",
    "delta_ppl": "ΔPPL",
    "kl_mean": "KL",
    "deployed_pct_survived": "% survived (llama.cpp)",
    "deployed_delta_ppl": "ΔPPL (llama.cpp)",
    "logp_gap_mean": "mean abs Δ log p, llama.cpp vs qfeat",
    "logp_gap_max": "max abs Δ log p",
    "wall_time_s": "job wall s",
}
PERCENT = ("pct_survived", "pct_blurred", "pct_destroyed", "deployed_pct_survived")


def gguf_ladder(col: Collection) -> pd.DataFrame:
    """One row per GGUF job, ordered by bits per weight (highest first)."""
    rows = []
    for name, s in col.summaries.items():
        g = s.gguf
        if g is None:
            continue
        m, d = s.metrics, g.deployed
        rows.append(
            {
                "model": s.model,
                "type": g.type,
                "imatrix": g.imatrix,
                "bits_per_weight": g.bits_per_weight,
                "n_active": m.n_active,
                "pct_survived": 100 * m.frac_survived,
                "pct_blurred": 100 * m.frac_blurred,
                "pct_destroyed": 100 * m.frac_destroyed,
                "delta_ppl": m.delta_ppl,
                "kl_mean": m.kl_mean,
                "deployed_pct_survived": None if d is None else 100 * d.frac_survived,
                "deployed_delta_ppl": None if d is None else d.delta_ppl,
                "logp_gap_mean": None if d is None else d.logp_gap_mean,
                "logp_gap_max": None if d is None else d.logp_gap_max,
                "wall_time_s": s.wall_time_s,
                "job": name,
            }
        )
    if not rows:
        return pd.DataFrame(columns=list(GGUF_NAMES))
    t = pd.DataFrame(rows).sort_values(["model", "bits_per_weight", "job"], ascending=False)
    return t.reindex(columns=list(GGUF_NAMES)).reset_index(drop=True)
