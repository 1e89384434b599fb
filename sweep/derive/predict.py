"""Predict which features survive compression from full-precision (FP) statistics alone."""

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.base import ClassifierMixin
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from sweep.base.errors import QfeatError
from sweep.results.columns import CLASSES, SURVIVED
from sweep.results.summary import MarginalAUC, Prediction, Roc

WEIGHT_COLUMNS = ("enc_norm", "dec_norm", "enc_bias", "threshold")

# Derived FP-only predictors (name -> function of the frame): log firing frequency, coefficient
# of variation std/mean, peak-to-typical ratio max/mean_active; a denominator ≤ 0 gives NaN.
DERIVED: dict[str, Callable[[pd.DataFrame], pd.Series]] = {
    "fp_log_frequency": lambda f: np.log10(f["fp_frequency"].where(f["fp_frequency"] > 0)),
    "fp_cv": lambda f: f["fp_std"] / f["fp_mean"].where(f["fp_mean"] > 0),
    "fp_peak_ratio": lambda f: f["fp_max"] / f["fp_mean_active"].where(f["fp_mean_active"] > 0),
}

PREDICTORS: tuple[str, ...] = (
    "fp_max",
    "fp_mean_active",
    "fp_frequency",
    "fp_std",
    "fp_mean",
    *WEIGHT_COLUMNS,
    *DERIVED,
)

# Columns that depend on the compressed model: using them would leak the answer.
COMPRESSED_COLUMNS = frozenset(
    {"r", "class", "damage", "silenced", "firing_jaccard", "rel_amplitude_error"}
)
MODELS = ("logistic", "tree")
MAX_ROC_POINTS = 200


def sae_weight_stats(sae: torch.nn.Module) -> pd.DataFrame:
    """Per-feature encoder/decoder norms, encoder bias and JumpReLU threshold of a frozen SAE."""
    with torch.no_grad():
        w_enc = sae.W_enc.detach().float().cpu()
        w_dec = sae.W_dec.detach().float().cpu()
        d_sae = w_enc.shape[1]
        if w_dec.shape[0] != d_sae:
            raise QfeatError(f"SAE W_enc has {d_sae} features but W_dec has {w_dec.shape[0]}")
        threshold = getattr(sae, "threshold", None)
        thr = (
            threshold.detach().float().cpu().numpy().astype(np.float64)
            if isinstance(threshold, torch.Tensor)
            else np.full(d_sae, np.nan)
        )
        return pd.DataFrame(
            {
                "feature": np.arange(d_sae, dtype=np.int64),
                "enc_norm": w_enc.norm(dim=0).double().numpy(),
                "dec_norm": w_dec.norm(dim=1).double().numpy(),
                "enc_bias": sae.b_enc.detach().double().cpu().numpy(),
                "threshold": thr,
            }
        )


def add_weight_stats(frame: pd.DataFrame, stats: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """`frame` with the weight statistics of each SAE (name -> sae_weight_stats) joined on."""
    parts = [s.assign(sae=name) for name, s in stats.items()]
    if not parts:
        return frame.copy()
    joined = pd.concat(parts, ignore_index=True)
    base = frame.drop(columns=[c for c in WEIGHT_COLUMNS if c in frame.columns])
    out = base.merge(joined, on=["sae", "feature"], how="left", validate="one_to_one")
    return out.astype({"sae": frame["sae"].dtype})


def check_predictors(predictors: Sequence[str]) -> None:
    """Raise if any predictor is a compressed-side column (a leak of the label)."""
    leaks = [p for p in predictors if p in COMPRESSED_COLUMNS or p.startswith("q_")]
    if leaks:
        raise QfeatError(f"predictors {leaks} use the compressed model; only FP statistics allowed")


def predictor_matrix(frame: pd.DataFrame, predictors: Sequence[str]) -> pd.DataFrame:
    """The requested predictor columns as float64, computing derived ones; inf becomes NaN."""
    check_predictors(predictors)
    cols = {}
    for name in predictors:
        if name in frame.columns:
            cols[name] = pd.to_numeric(frame[name], errors="coerce").astype(np.float64)
        elif name in DERIVED:
            cols[name] = DERIVED[name](frame).astype(np.float64)
        else:
            raise QfeatError(
                f"predictor {name!r} is not a column of the frame (weight statistics are "
                "joined with sweep.derive.predict.add_weight_stats)"
            )
    return pd.DataFrame(cols, index=frame.index).replace([np.inf, -np.inf], np.nan)


def make_model(model: str, seed: int) -> Pipeline:
    """Median imputation, standardisation, then logistic regression or a random forest."""
    clf: ClassifierMixin
    if model == "logistic":
        clf = LogisticRegression(max_iter=2000)
    elif model == "tree":
        # A random forest, single-threaded: OpenMP-based boosting stalls on busy shared nodes.
        clf = RandomForestClassifier(
            n_estimators=200, min_samples_leaf=5, n_jobs=1, random_state=seed
        )
    else:
        raise QfeatError(f"unknown survival model {model!r}; choose one of {list(MODELS)}")
    return make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), clf)


def marginal_auc(label: np.ndarray, values: np.ndarray) -> MarginalAUC:
    """ROC AUC of one predictor alone (NaNs dropped), its sign and direction-free AUC."""
    keep = ~np.isnan(values)
    y, v = label[keep], values[keep]
    n = int(keep.sum())
    if n == 0 or y.min() == y.max():
        nan = float("nan")
        return MarginalAUC(auc=nan, auc_abs=nan, sign=None, n=n)
    auc = float(roc_auc_score(y, v))
    sign = "+" if auc > 0.5 else "-" if auc < 0.5 else "0"
    return MarginalAUC(auc=auc, auc_abs=max(auc, 1.0 - auc), sign=sign, n=n)


def _downsample(fpr: np.ndarray, tpr: np.ndarray) -> tuple[list[float], list[float]]:
    """At most MAX_ROC_POINTS evenly spaced curve points, always keeping both ends."""
    if len(fpr) > MAX_ROC_POINTS:
        idx = np.unique(np.linspace(0, len(fpr) - 1, MAX_ROC_POINTS).round().astype(int))
        fpr, tpr = fpr[idx], tpr[idx]
    return [float(x) for x in fpr], [float(x) for x in tpr]


def predict_survival(
    frame: pd.DataFrame,
    predictors: Sequence[str] = PREDICTORS,
    label: str = SURVIVED,
    k: int = 5,
    model: str = "logistic",
    seed: int = 0,
) -> Prediction:
    """Cross-validated ROC AUC of predicting `class == label` for active features from FP stats."""
    check_predictors(predictors)
    if label not in CLASSES:
        raise QfeatError(f"survival label {label!r} must be one of {list(CLASSES)}")
    if model not in MODELS:
        raise QfeatError(f"unknown survival model {model!r}; choose one of {list(MODELS)}")
    if k < 2:
        raise QfeatError(f"cross-validation needs k >= 2 folds, got {k}")
    rows = frame[frame["active"].astype(bool)]
    y = (rows["class"] == label).to_numpy(dtype=np.int64)
    n, n_pos = len(y), int(y.sum())
    out: dict[str, Any] = {"n": n, "n_positive": n_pos, "model": model, "k": k, "label": label}
    x_all = predictor_matrix(rows, predictors)
    dropped = [c for c in x_all.columns if x_all[c].isna().all()]
    x = x_all.drop(columns=dropped)
    out["predictors"], out["dropped"] = list(x.columns), dropped

    reason = None
    if n < 2 * k:
        reason = f"too few active features ({n}) for {k}-fold cross-validation"
    elif n_pos in (0, n):
        reason = f"all {n} active features are in one class (label {label!r}: {n_pos})"
    elif min(n_pos, n - n_pos) < k:
        reason = f"minority class has {min(n_pos, n - n_pos)} members, fewer than k={k}"
    elif x.shape[1] == 0:
        reason = "no predictor has any non-missing value"
    if reason is not None:
        return Prediction(estimable=False, reason=reason, **out)

    values = x.to_numpy()
    cv = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    pipe = make_model(model, seed)
    oof = cross_val_predict(pipe, values, y, cv=cv, method="predict_proba")[:, 1]
    fold_aucs = [float(roc_auc_score(y[test], oof[test])) for _, test in cv.split(values, y)]
    fpr, tpr, _ = roc_curve(y, oof)
    roc_fpr, roc_tpr = _downsample(fpr, tpr)
    coef = None
    if model == "logistic":
        fitted = make_model(model, seed).fit(values, y)
        weights = fitted[-1].coef_[0]
        coef = {c: float(w) for c, w in zip(x.columns, weights, strict=True)}
    return Prediction(
        estimable=True,
        reason=None,
        **out,
        auc=float(roc_auc_score(y, oof)),
        fold_auc_mean=float(np.mean(fold_aucs)),
        fold_auc_std=float(np.std(fold_aucs)),
        fold_aucs=fold_aucs,
        marginal={c: marginal_auc(y, x_all[c].to_numpy()) for c in x.columns},
        roc=Roc(fpr=roc_fpr, tpr=roc_tpr),
        coef_standardized=coef,
    )
