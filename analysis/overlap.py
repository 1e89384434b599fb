"""Damage overlap between two finished jobs, computed from their features.parquet files alone."""

from pathlib import Path

import pandas as pd

from sweep.constants import FEATURES_FILE
from sweep.overlap import damage_overlap


def overlap_of_jobs(job_a: Path, job_b: Path) -> dict:
    """Jaccard of damaged sets and Spearman of damage between two job directories."""
    a = pd.read_parquet(Path(job_a) / FEATURES_FILE)
    b = pd.read_parquet(Path(job_b) / FEATURES_FILE)
    return damage_overlap(a, b)
