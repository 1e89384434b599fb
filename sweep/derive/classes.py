"""Survival classes of features and the fractions of a job's active features in each: numpy
and pandas only, so analysis computes them exactly as the job does."""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from sweep.results.columns import BLURRED, CLASSES, DESTROYED, INACTIVE, SURVIVED
from sweep.results.summary import ClassFractions


@dataclass(frozen=True)
class Rules:
    """What makes a feature active and which class its r falls in (survival.* config)."""

    min_active: int
    survived: float
    blurred: float

    @classmethod
    def of(cls, survival) -> "Rules":
        """The rules of a `survival` config node."""
        return cls(int(survival.min_active_tokens), survival.survived, survival.blurred)


def classify(r: np.ndarray, active: np.ndarray, survived: float, blurred: float) -> np.ndarray:
    """survived (r ≥ survived), blurred (blurred ≤ r < survived), destroyed, or inactive."""
    classes = np.where(r >= survived, SURVIVED, np.where(r >= blurred, BLURRED, DESTROYED))
    return np.where(active, classes, INACTIVE).astype(object)


def uncertain(
    r: np.ndarray, r_lo: np.ndarray, r_hi: np.ndarray, active: np.ndarray, rules: Rules
) -> np.ndarray:
    """Active features whose interval, widened to hold r itself, has values on both sides of a
    class threshold (lo < t ≤ hi for t = survived or blurred)."""
    lo, hi = np.fmin(r_lo, r), np.fmax(r_hi, r)
    straddles = np.zeros(len(r), dtype=bool)
    for t in (rules.survived, rules.blurred):
        straddles |= (lo < t) & (hi >= t)
    return active & straddles


def class_counts(frame: pd.DataFrame) -> dict[str, float | int]:
    """Counts of active features and the fraction of them in each class (the fields of
    ClassFractions), from a features frame (one SAE's rows or several)."""
    active = frame[frame["active"].astype(bool)]
    n = len(active)
    out: dict[str, float | int] = {"n_features": len(frame), "n_active": n}
    for name in CLASSES:
        count = int((active["class"] == name).sum())
        out[f"n_{name}"] = count
        out[f"frac_{name}"] = count / n if n else float("nan")
    out["n_silenced"] = int(active["silenced"].sum())
    out["mean_r"] = float(active["r"].mean()) if n else float("nan")
    out["median_r"] = float(active["r"].median()) if n else float("nan")
    if "uncertain" in frame:  # jobs before the token bootstrap have no intervals
        unsure = int(active["uncertain"].astype(bool).sum())
        out["n_uncertain"] = unsure
        out["frac_uncertain"] = unsure / n if n else float("nan")
    return out


def class_fractions(frame: pd.DataFrame) -> ClassFractions:
    """ClassFractions of a features frame."""
    return ClassFractions(**class_counts(frame))
