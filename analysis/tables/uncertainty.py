"""Tables on how sure a sweep's numbers are: per job, survival on half and all of its tokens
with the token-bootstrap interval and whether it settled; per pair of jobs on the same
tokens, the overlap of their damage."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.load.collect import Collection
from analysis.tables.overlap import pairwise_overlap
from sweep.derive.classes import Rules, uncertain
from sweep.results.summary import Uncertainty

TOKEN_SET = {
    "model": "model",
    "compression": "method",
    "bits": "bits",
    "extras": "configuration",
    "n_tokens": "tokens",
    "n_blocks": "blocks",
    "pct_survived_half": "% survived (half the tokens)",
    "pct_survived": "% survived",
    "token_interval": "token interval",
    "settles_from": "within ± half-width from (tokens)",
    "pct_uncertain": "% uncertain",
    "settled": "settled",
    "settle_note": "note",
}
MIN_ACTIVE = {
    "model": "model",
    "compression": "method",
    "bits": "bits",
    "extras": "configuration",
    "min_active": "min_active_tokens",
    "n_active": "active",
    "pct_survived": "% survived",
    "pct_uncertain": "% uncertain",
}
# The thresholds the sensitivity table tries, besides each job's own.
THRESHOLDS = (3, 5, 10, 20, 50, 100)
OVERLAP_PAIRS = {
    "model": "model",
    "saes": "SAE",
    "job_a": "job a",
    "job_b": "job b",
    "n_damaged_a": "damaged (a)",
    "n_damaged_b": "damaged (b)",
    "n_damaged_both": "damaged (both)",
    "jaccard": "Jaccard",
    "spearman": "Spearman",
}


def settles_from(u: Uncertainty) -> int | None:
    """The fewest tokens from which survival on every longer prefix stays within half the
    full token set's interval width of its final value (None without an interval)."""
    if u.job is None or not u.convergence:
        return None
    final = u.convergence[-1].frac_survived
    half = (u.job.frac_survived_hi - u.job.frac_survived_lo) / 2
    start = u.convergence[-1].n_tokens
    for p in reversed(u.convergence):
        if abs(p.frac_survived - final) > half:
            break
        start = p.n_tokens
    return start


def token_set(col: Collection) -> pd.DataFrame:
    """Per job with recorded prefixes: survival at about half its tokens and at all of them,
    its token-bootstrap interval, the uncertain share, and the settling verdict."""
    rows = []
    for _, job in col.jobs.iterrows():
        u = col.summaries[f"{job['sweep']}/{job['key']}"].uncertainty
        if u is None or not u.convergence:
            continue
        full = u.convergence[-1]
        half = min(u.convergence, key=lambda p: abs(p.n_tokens - full.n_tokens / 2))
        interval = (
            f"{100 * u.job.frac_survived_lo:.1f}–{100 * u.job.frac_survived_hi:.1f}"
            if u.job
            else ""
        )
        rows.append(
            {
                "sweep": job["sweep"],
                **{k: job.get(k) for k in ("model", "compression", "bits", "extras")},
                "n_tokens": full.n_tokens,
                "n_blocks": u.n_blocks,
                "pct_survived_half": 100 * half.frac_survived,
                "pct_survived": 100 * full.frac_survived,
                "token_interval": interval,
                "settles_from": settles_from(u),
                "pct_uncertain": 100 * job["frac_uncertain"]
                if pd.notna(job.get("frac_uncertain"))
                else None,
                "settled": u.settled,
                "settle_note": u.settle_note,
            }
        )
    cols = (["sweep"] if col.dims.sweeps > 1 else []) + list(TOKEN_SET)
    return pd.DataFrame(rows, columns=["sweep", *TOKEN_SET]).reindex(columns=cols)


def overlap_pairs(col: Collection) -> pd.DataFrame:
    """Every pair of distinct jobs on the same FP reference, once each."""
    t = pairwise_overlap(col)
    if t.empty:
        return pd.DataFrame(columns=list(OVERLAP_PAIRS))
    order = {k: i for i, k in enumerate(dict.fromkeys(t["key_a"]))}
    once = t[[order[a] < order[b] for a, b in zip(t["key_a"], t["key_b"], strict=True)]]
    return once.reindex(columns=list(OVERLAP_PAIRS)).reset_index(drop=True)


def min_active_sensitivity(col: Collection) -> pd.DataFrame:
    """Per job with r intervals and per candidate `survival.min_active_tokens`: how many
    features would be active, and their % survived and % uncertain (every feature whose FP code
    varies has an interval, so thresholds below the job's own can be tried too)."""
    rows = []
    f = col.features
    for _, job in col.jobs.iterrows():
        part = f[(f["sweep"] == job["sweep"]) & (f["key"] == job["key"]) & f["r_lo"].notna()]
        if part.empty:
            continue
        config = col.summaries[f"{job['sweep']}/{job['key']}"].config.get("survival") or {}
        rules = Rules(int(config.get("min_active_tokens", 10)), *_thresholds(config))
        for m in sorted({*THRESHOLDS, rules.min_active}):
            kept = part[part["fp_active_count"] >= m]
            r = kept["r"].to_numpy()
            everyone = np.ones(len(kept), dtype=bool)
            unsure = uncertain(r, kept["r_lo"].to_numpy(), kept["r_hi"].to_numpy(), everyone, rules)
            n = len(kept)
            rows.append(
                {
                    "sweep": job["sweep"],
                    **{k: job.get(k) for k in ("model", "compression", "bits", "extras")},
                    "min_active": m,
                    "n_active": n,
                    "pct_survived": 100 * float((np.nan_to_num(r, nan=-1) >= rules.survived).mean())
                    if n
                    else np.nan,
                    "pct_uncertain": 100 * float(unsure.mean()) if n else np.nan,
                }
            )
    cols = (["sweep"] if col.dims.sweeps > 1 else []) + list(MIN_ACTIVE)
    return pd.DataFrame(rows, columns=["sweep", *MIN_ACTIVE]).reindex(columns=cols)


def _thresholds(survival: dict) -> tuple[float, float]:
    return float(survival.get("survived", 0.9)), float(survival.get("blurred", 0.5))
