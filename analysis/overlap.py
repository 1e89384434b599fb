"""Damage overlap between two finished jobs, computed from their features.parquet files alone."""

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from analysis.configs import canon, column
from sweep.constants import FEATURES_FILE
from sweep.overlap import damage_overlap


def overlap_of_jobs(job_a: Path, job_b: Path) -> dict:
    """Jaccard of damaged sets and Spearman of damage between two job directories."""
    a = pd.read_parquet(Path(job_a) / FEATURES_FILE)
    b = pd.read_parquet(Path(job_b) / FEATURES_FILE)
    return damage_overlap(a, b)


def paired_damage(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """Damage of the features active in both frames, side by side (damage_a, damage_b)."""
    cols = ["sae", "feature", "active", "damage", "class"]
    m = a[cols].merge(b[cols], on=["sae", "feature"], suffixes=("_a", "_b"), validate="one_to_one")
    return m[m["active_a"].astype(bool) & m["active_b"].astype(bool)].reset_index(drop=True)


# Config keys in which a matched job and its reference job differ by construction.
MATCH_ONLY = ("compression.name", "compression.match", "sparsity")


def matched_pairs(
    jobs: pd.DataFrame, config: Sequence[str] = ()
) -> list[tuple[pd.Series, pd.Series | None]]:
    """Each matched-pruning job with the sweep's job of its reference method at the same bits.

    The partner must share sweep, model, SAEs, bits, the FP reference key (same tokens and FP
    model) and every varying config key in `config` but MATCH_ONLY (the reference compresses
    with the matched job's own compression settings), so its features are the reference model
    the matched job compared against; None when no job or several jobs qualify.
    """
    if "matched_reference" not in jobs or "sparsity" not in jobs:
        return []
    matched = jobs[jobs["compression"].astype(str).str.endswith("_matched")]
    keys = [column(k) for k in config if k not in MATCH_ONLY]
    same_cols = ["sweep", "model", "saes", "bits", *keys]
    pairs = []
    for _, job in matched.iterrows():
        method = job["matched_reference"] or "rtn"
        same = jobs[jobs["compression"] == method]
        for c in same_cols:
            same = same[same[c].map(canon) == canon(job[c])]
        if job.get("reference_key") is not None:
            same = same[same["reference_key"] == job["reference_key"]]
        pairs.append((job, same.iloc[0] if len(same) == 1 else None))
    return pairs


def overlap_table(
    jobs: pd.DataFrame, features: pd.DataFrame, config: Sequence[str] = ()
) -> pd.DataFrame:
    """Per matched job: sparsity, Jaccard and Spearman (from its summary, else recomputed)."""
    rows = []
    for job, ref in matched_pairs(jobs, config):
        row = {
            "sweep": job["sweep"],
            "key": job["key"],
            "extras": job.get("extras", ""),
            "model": job["model"],
            "saes": job["saes"],
            "bits": int(job["bits"]),
            "reference": job["matched_reference"] or "rtn",
            "matched_sparsity": job["sparsity"],
            "converged": job.get("matched_converged"),
            "jaccard": job["overlap_jaccard"],
            "spearman": job["overlap_spearman"],
            "n_damaged_reference": job["overlap_n_damaged_a"],
            "n_damaged_pruned": job["overlap_n_damaged_b"],
            "source": "summary",
        }
        if pd.isna(job["overlap_n_damaged_a"]) and ref is not None:
            mine = features[features["sweep"] == job["sweep"]]
            got = damage_overlap(mine[mine["key"] == ref["key"]], mine[mine["key"] == job["key"]])
            row.update(
                jaccard=got["jaccard"],
                spearman=got["spearman"],
                n_damaged_reference=got["n_damaged_a"],
                n_damaged_pruned=got["n_damaged_b"],
                source=f"recomputed from job {ref['key']}",
            )
        rows.append(row)
    return pd.DataFrame(rows)
