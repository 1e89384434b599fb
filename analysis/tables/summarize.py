"""Per-cell survival fractions with seeded bootstrap CIs, and the labels that name each cell.

A cell is one job × one SAE hook, so a row, series point or CI is always one configuration;
a series is the cells that differ only in bit-width (see analysis.load.configs).
"""

import numpy as np
import pandas as pd

from analysis.load.collect import Collection
from sweep.results.columns import BLURRED, DESTROYED, SURVIVED

CELL = ["sweep", "key", "sae"]
# A series: every identifying column but the bit-width (and the job key, which includes it).
SERIES = ["sweep", "model", "sae", "layer", "compression", "extras"]
# One SAE of the per-SAE figure: its model, hook and varying sae.* config values.
SAE_ID = ["sweep", "model", "sae", "layer", "sae_name"]


def bootstrap_fraction_ci(
    hits: int, n: int, n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap CI of a fraction of n features (resampling features with replacement).

    For a 0/1 indicator, the count in a resample is exactly Binomial(n, hits/n), so drawing that
    count is the nonparametric bootstrap without materialising n_boot × n indices.
    """
    if n == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    draws = rng.binomial(n, hits / n, size=n_boot) / n
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(draws, [alpha, 1.0 - alpha])
    return float(low), float(high)


def where(row: pd.Series | dict) -> str:
    """`L2` from the layer, else the SAE identifier itself ('' for a whole-job row)."""
    layer = row.get("layer")
    if layer is not None and not pd.isna(layer):
        return f"L{int(layer)}"
    return str(row.get("sae") or "")


def label(
    row: pd.Series | dict, sweeps: int = 1, with_method: bool = True, with_bits: bool = False
) -> str:
    """A legend label: model, layer, method, the varying config keys (key=value), bits."""
    parts = [str(row["model"]), where(row)] if where(row) else [str(row["model"])]
    if with_method:
        parts.append(str(row["compression"]))
    if row.get("extras"):
        parts.append(str(row["extras"]))
    if sweeps > 1:
        parts.insert(0, str(row["sweep"]))
    if with_bits and not pd.isna(row["bits"]):
        parts.append(f"{int(row['bits'])}b")
    return " ".join(parts)


def sae_label(row: pd.Series | dict, sweeps: int = 1) -> str:
    """An SAE's label: model, layer and its varying sae.* config values (e.g. sae=tiny-topk)."""
    parts = [str(row["model"]), where(row)]
    if row.get("sae_name"):
        parts.append(str(row["sae_name"]))
    if sweeps > 1:
        parts.insert(0, str(row["sweep"]))
    return " ".join(parts)


def series_groups(frame: pd.DataFrame, by: list[str] = SERIES) -> list[tuple[tuple, pd.DataFrame]]:
    """Groups of a frame with label columns, one per series, in a stable order."""
    keys = [c for c in by if c in frame]
    filled = frame.assign(**{c: frame[c].astype(object).where(frame[c].notna(), "") for c in keys})
    return [
        (k if isinstance(k, tuple) else (k,), frame.loc[part.index])
        for k, part in filled.groupby(keys, sort=True)
    ]


def survival_summary(col: Collection, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """One row per cell (job × SAE): class fractions, survival 95% CI, mean r and labels."""
    f = col.features
    if f.empty:
        return pd.DataFrame()
    active = f[f["active"].astype(bool)]
    rows = []
    for keys, part in active.groupby(CELL, sort=True):
        n = len(part)
        counts = {c: int((part["class"] == c).sum()) for c in (SURVIVED, BLURRED, DESTROYED)}
        low, high = bootstrap_fraction_ci(counts[SURVIVED], n, n_boot, seed)
        rows.append(
            {
                **dict(zip(CELL, keys, strict=True)),
                "n_active": n,
                **{f"frac_{c}": counts[c] / n for c in counts},
                "survived_ci_low": low,
                "survived_ci_high": high,
                "mean_r": float(part["r"].mean()),
            }
        )
    if not rows:
        return pd.DataFrame()
    cells = pd.DataFrame(rows).astype({"sae": object})
    meta = col.per_sae.drop(columns=[c for c in cells if c in col.per_sae and c not in CELL])
    return cells.merge(meta.astype({"sae": object}), on=CELL, how="left", validate="one_to_one")
