"""Per-group survival fractions, seeded bootstrap CIs over features: for figures and tables."""

import numpy as np
import pandas as pd

from sweep.constants import BLURRED, DESTROYED, SURVIVED

GROUP = ["sweep", "model", "sae", "layer", "compression", "bits"]


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


def label(row: pd.Series | dict, sweeps: int = 1, with_method: bool = True) -> str:
    """A short legend label: model, layer (or hook), method; the sweep when several."""
    layer = row.get("layer")
    where = f"L{int(layer)}" if layer is not None and not pd.isna(layer) else str(row["sae"])
    parts = [str(row["model"]), where]
    if with_method:
        parts.append(str(row["compression"]))
    if sweeps > 1:
        parts.insert(0, str(row["sweep"]))
    return " ".join(parts)


def survival_summary(features: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """One row per (sweep, model, sae, compression, bits): class fractions and survival 95% CI."""
    active = features[features["active"].astype(bool)]
    rows = []
    for keys, part in active.groupby(GROUP, sort=True, dropna=False):
        n = len(part)
        counts = {c: int((part["class"] == c).sum()) for c in (SURVIVED, BLURRED, DESTROYED)}
        low, high = bootstrap_fraction_ci(counts[SURVIVED], n, n_boot, seed)
        rows.append(
            {
                **dict(zip(GROUP, keys, strict=True)),
                "n_active": n,
                **{f"frac_{c}": counts[c] / n for c in counts},
                "survived_ci_low": low,
                "survived_ci_high": high,
                "mean_r": float(part["r"].mean()),
            }
        )
    return pd.DataFrame(rows)
