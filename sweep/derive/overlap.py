"""Do two compressions of the same model, SAE and tokens damage the same features?"""

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from sweep.base.errors import QfeatError
from sweep.results.columns import SURVIVED
from sweep.results.summary import Overlap

KEYS = ["sae", "feature"]
REQUIRED = (*KEYS, "active", "class", "damage")
MIN_SPEARMAN = 3


def _check(frame: pd.DataFrame, name: str) -> None:
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise QfeatError(f"frame {name} lacks columns {missing} needed for damage overlap")
    dup = frame.duplicated(KEYS)
    if dup.any():
        first = frame.loc[dup, KEYS].iloc[0].tolist()
        raise QfeatError(f"frame {name} has duplicate (sae, feature) rows, e.g. {first}")


def _keys(frame: pd.DataFrame) -> pd.MultiIndex:
    """The frame's (sae, feature) pairs, sorted (vectorised: no Python loop over features)."""
    arrays = [frame["sae"].astype(str), frame["feature"].astype(np.int64)]
    return pd.MultiIndex.from_arrays(arrays, names=KEYS).sort_values()


def check_same_features(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Raise unless both frames describe exactly the same SAEs and feature indices."""
    _check(a, "a")
    _check(b, "b")
    keys_a, keys_b = _keys(a), _keys(b)
    if keys_a.equals(keys_b):
        return
    saes_a, saes_b = set(keys_a.unique(level="sae")), set(keys_b.unique(level="sae"))
    if saes_a != saes_b:
        raise QfeatError(f"frames come from different SAEs: {sorted(saes_a)} vs {sorted(saes_b)}")
    only_a, only_b = len(keys_a.difference(keys_b)), len(keys_b.difference(keys_a))
    raise QfeatError(
        f"frames cover different feature sets ({only_a} features only in a, {only_b} only in b)"
    )


def jaccard(damaged_a: np.ndarray, damaged_b: np.ndarray) -> tuple[float, str | None]:
    """|A ∩ B| / |A ∪ B| of two boolean masks; NaN and a reason when the union is empty."""
    union = int((damaged_a | damaged_b).sum())
    if union == 0:
        return float("nan"), "no feature is damaged by either compression (empty union)"
    return int((damaged_a & damaged_b).sum()) / union, None


def spearman(x: np.ndarray, y: np.ndarray) -> tuple[float, float, int, str | None]:
    """Spearman rho and p over pairs without NaN; NaN and a reason when undefined."""
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y, n = x[keep], y[keep], int(keep.sum())
    nan = float("nan")
    if n < MIN_SPEARMAN:
        return nan, nan, n, f"fewer than {MIN_SPEARMAN} common active features with damage ({n})"
    if np.all(x == x[0]) or np.all(y == y[0]):
        return nan, nan, n, "damage is constant in at least one compression"
    res = spearmanr(x, y)
    return float(res.statistic), float(res.pvalue), n, None


def damage_overlap(a: pd.DataFrame, b: pd.DataFrame) -> Overlap:
    """Jaccard of the damaged (non-survived) sets and Spearman of damage over common actives."""
    check_same_features(a, b)
    left = a[list(REQUIRED)].assign(sae=a["sae"].astype(str), feature=a["feature"].astype(np.int64))
    right = b[list(REQUIRED)].assign(
        sae=b["sae"].astype(str), feature=b["feature"].astype(np.int64)
    )
    m = left.merge(right, on=KEYS, suffixes=("_a", "_b"), validate="one_to_one")
    active_a, active_b = m["active_a"].astype(bool), m["active_b"].astype(bool)
    common = m[active_a & active_b]
    dam_a = (common["class_a"] != SURVIVED).to_numpy()
    dam_b = (common["class_b"] != SURVIVED).to_numpy()
    jac, jac_reason = jaccard(dam_a, dam_b)
    rho, p, n_rho, rho_reason = spearman(
        common["damage_a"].to_numpy(dtype=np.float64), common["damage_b"].to_numpy(dtype=np.float64)
    )
    return Overlap(
        n_features=len(m),
        n_active_a=int(active_a.sum()),
        n_active_b=int(active_b.sum()),
        n_common_active=len(common),
        n_damaged_a=int(dam_a.sum()),
        n_damaged_b=int(dam_b.sum()),
        n_damaged_both=int((dam_a & dam_b).sum()),
        n_damaged_union=int((dam_a | dam_b).sum()),
        jaccard=jac,
        jaccard_reason=jac_reason,
        spearman=rho,
        spearman_p=p,
        spearman_n=n_rho,
        spearman_reason=rho_reason,
    )
