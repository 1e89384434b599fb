"""Feature drill-down: the most damaged features of one cell, with their FP statistics."""

from __future__ import annotations

import pandas as pd

from analysis.collect import AnalysisError, Collection
from analysis.formatting import number

COLUMNS = [
    "compression",
    "bits",
    "sae",
    "feature",
    "class",
    "r",
    "damage",
    "silenced",
    "fp_active_count",
    "fp_frequency",
    "fp_mean_active",
    "fp_max",
    "q_active_count",
    "firing_jaccard",
    "rel_amplitude_error",
]


def worst_features(
    col: Collection,
    model: str | None = None,
    bits: int | None = None,
    compression: str | None = None,
    sae: str | None = None,
    worst: int = 20,
) -> pd.DataFrame:
    """The `worst` active features with the largest damage (1 − r) in each selected job."""
    f = col.features
    if f.empty:
        raise AnalysisError("no features in the collected jobs")
    chosen = {"model": model, "bits": bits, "compression": compression, "sae": sae}
    for name, value in chosen.items():
        if value is None:
            continue
        keep = f[name] == value
        if not keep.any():
            have = sorted(map(str, f[name].unique()))
            raise AnalysisError(f"no job with {name}={value}; available: {', '.join(have)}")
        f = f[keep]
    active = f[f["active"].astype(bool)]
    if active.empty:
        raise AnalysisError("no active features in the selected jobs")
    ordered = active.sort_values(["damage", "feature"], ascending=[False, True], na_position="last")
    top = ordered.groupby(["sweep", "key", "sae"], sort=False).head(worst)
    jobs = col.jobs[["sweep", "key", "extras"]].rename(columns={"extras": "configuration"})
    top = top.merge(jobs, on=["sweep", "key"], how="left")
    cols = list(COLUMNS) if col.dims.sweeps == 1 else ["sweep", *COLUMNS]
    if top["configuration"].fillna("").astype(bool).any():  # several configs: say which is which
        cols.insert(cols.index("bits") + 1, "configuration")
    order = ["compression", "configuration", "bits", "sae", "damage"]
    top = top.sort_values(order, ascending=[1, 1, 1, 1, 0])
    return top[cols].reset_index(drop=True)


def format_table(frame: pd.DataFrame) -> str:
    """A fixed-width text table for a terminal (numbers to 3 significant digits)."""
    shown = frame.copy()
    for c in shown.columns:
        if pd.api.types.is_float_dtype(shown[c]):
            shown[c] = shown[c].map(number)
    return shown.to_string(index=False)
