"""Is feature damage additive over parts? Measured per feature, never assumed.

In each group of analysis.tables.attribution with single-part jobs and one whole-model job,
each active feature's damage 1 − r under the whole model is set against the sum of its damage
over the single-part jobs. Whether those parts make up the whole is checked too: their
compressed matrices must add up to the whole-model job's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import pearsonr

from analysis.formatting import number, percent
from analysis.load.collect import Collection
from analysis.tables.attribution import PART, WHOLE, part_features, shown_columns
from sweep.results.columns import SURVIVED

ALL_LAYERS = "all"
ADDITIVITY = {
    "sweep": "sweep",
    "model": "model",
    "compression": "method",
    "setting": "configuration",
    "bits": "bits",
    "layer": "layer",
    "n_active": "active",
    "n_parts": "single-part jobs",
    "complete": "parts make the whole",
    "mean_summed": "mean summed damage",
    "mean_whole": "mean whole damage",
    "pearson_r": "Pearson r (sum vs whole)",
    "n_damaged_whole": "damaged (whole)",
    "median_ratio": "median whole / sum (damaged)",
    "pct_underestimated": "% sum < whole",
}
CAPTION = (
    "Is damage additive over parts? Per active feature, the damage 1 − r under the whole-model "
    "job against the sum of its damage over the single-part jobs at the same method and bits "
    "(parts make the whole: their compressed matrices add up to the whole-model job's). "
    "Pearson r of summed vs whole damage over the active features; median of whole / sum over "
    "the features the whole-model job damages (not survived; above 1 the parts compound, below "
    "1 the sum overstates); % of active features whose sum is below the whole."
)


def additivity_stats(summed: np.ndarray, whole: np.ndarray, damaged: np.ndarray) -> dict:
    """Pearson r of summed vs whole damage, the median whole/sum over the `damaged` features
    and the % of features whose sum is below the whole (NaN where undefined)."""
    summed, whole = np.asarray(summed, float), np.asarray(whole, float)
    damaged = np.asarray(damaged, bool)
    varies = len(summed) > 1 and np.ptp(summed) > 0 and np.ptp(whole) > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = whole[damaged] / summed[damaged]
    return {
        "n_active": len(summed),
        "mean_summed": float(summed.mean()) if len(summed) else np.nan,
        "mean_whole": float(whole.mean()) if len(whole) else np.nan,
        "pearson_r": float(pearsonr(summed, whole).statistic) if varies else np.nan,
        "n_damaged_whole": int(damaged.sum()),
        "median_ratio": float(np.median(ratio)) if len(ratio) else np.nan,
        "pct_underestimated": 100 * float(np.mean(summed < whole)) if len(summed) else np.nan,
    }


def summed_vs_whole(group: pd.DataFrame) -> pd.DataFrame | None:
    """One group's features active in every job: layer, summed (over the single-part jobs) and
    whole damage and whether the whole-model job damages it; None without both kinds of job."""
    singles, whole = group[group["scope"].eq(PART)], group[group["scope"].eq(WHOLE)]
    if singles["key"].nunique() < 2 or whole["key"].nunique() != 1:
        return None
    wide = singles.pivot_table(index=["sae", "feature"], columns="key", values="damage")
    summed = wide.dropna().sum(axis=1).rename("summed")
    w = whole.set_index(["sae", "feature"])
    w = w.assign(whole=w["damage"], damaged=w["class"].ne(SURVIVED))[["layer", "whole", "damaged"]]
    return w.join(summed, how="inner").dropna(subset=["whole"]).reset_index()


def additivity(col: Collection) -> pd.DataFrame:
    """Per group with single-part and whole-model jobs and per layer (then all layers pooled):
    additivity_stats of summed vs whole damage, with the parts-make-the-whole check."""
    pf = part_features(col)
    rows = []
    for _, group in pf.groupby("group", sort=True):
        pairs = summed_vs_whole(group)
        if pairs is None:
            continue
        jobs = group.drop_duplicates("key").set_index("scope")
        parts = jobs.loc[[PART], "n_matrices"]
        first = group.iloc[0]
        ids = {c: first[c] for c in ("sweep", "model", "compression", "setting", "bits")}
        complete = bool(parts.sum() == jobs.at[WHOLE, "n_matrices"])
        ids |= {"n_parts": len(parts), "complete": complete}
        cuts = list(pairs.groupby("layer", sort=True))
        for layer, p in [*cuts, *([(ALL_LAYERS, pairs)] if len(cuts) > 1 else [])]:
            stats = additivity_stats(p["summed"], p["whole"], p["damaged"])
            rows.append({**ids, "layer": layer if layer == ALL_LAYERS else int(layer), **stats})
    return pd.DataFrame(rows, columns=list(ADDITIVITY))


def additivity_table(col: Collection) -> pd.DataFrame:
    """The report's additivity table (sweep and configuration only when they vary)."""
    return shown_columns(additivity(col), ADDITIVITY, col)


def _sentence(r: pd.Series) -> str:
    """What one additivity row found, in words."""
    where = "all layers" if r["layer"] == ALL_LAYERS else f"layer {r['layer']}"
    parts = f"{r['n_parts']} parts" + ("" if r["complete"] else ", not the whole model")
    return (
        f"{r['compression']} at {r['bits']} bits ({where}, {parts}): Pearson r "
        f"{number(r['pearson_r'])} over {r['n_active']} features; whole / sum median "
        f"{number(r['median_ratio'])} over the {r['n_damaged_whole']} the whole model damages; "
        f"the sum underestimates the whole for {percent(r['pct_underestimated'])}%."
    )


def additivity_caption(table: pd.DataFrame) -> str:
    """CAPTION and one sentence per pooled row (per row when no group has several layers)."""
    pooled = table["layer"].astype(str).eq(ALL_LAYERS)
    shown = table[pooled] if pooled.any() else table
    return " ".join([CAPTION, *(_sentence(r) for _, r in shown.iterrows())])
