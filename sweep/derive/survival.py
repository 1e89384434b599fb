"""From streamed statistics to per-feature survival rows (features.parquet)."""

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig

from sweep.derive.classes import Rules, classify, uncertain
from sweep.derive.uncertainty import FeatureIntervals
from sweep.passes.stats import PairStats
from sweep.results.columns import FEATURE_COLUMNS, FIDELITY_COLUMNS


def _safe_div(num: torch.Tensor, den: torch.Tensor) -> np.ndarray:
    num, den = num.double().cpu().numpy(), den.double().cpu().numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def feature_frame(
    stats: PairStats,
    sae_name: str,
    cfg: DictConfig,
    weights: pd.DataFrame,
    intervals: FeatureIntervals | None = None,
) -> pd.DataFrame:
    """One row per feature: FP and SAE-weight statistics, r, class, damage, how it failed, and
    r's token-bootstrap interval when `intervals` are given (else NaN, and none uncertain).

    `weights` is `sweep.derive.predict.sae_weight_stats(sae)` (columns feature, enc_norm, …).
    """
    s = stats.to("cpu")
    n = s.n
    r = s.pearson().numpy()
    active = s.active_x.numpy() >= cfg.min_active_tokens
    union = s.active_x + s.active_y - s.active_both
    cls = classify(np.nan_to_num(r, nan=-1.0), active, cfg.survived, cfg.blurred)
    nan = np.full(len(r), np.nan)
    lo, hi = (intervals.r_lo, intervals.r_hi) if intervals else (nan, nan)
    frame = pd.DataFrame(
        {
            "sae": sae_name,
            "feature": np.arange(len(r), dtype=np.int64),
            "n_tokens": np.full(len(r), n, dtype=np.int64),
            "fp_active_count": s.active_x.numpy(),
            "fp_frequency": s.active_x.numpy() / n,
            "fp_mean": s.mean_x.numpy(),
            "fp_mean_active": _safe_div(s.mean_x * n, s.active_x),
            "fp_std": np.sqrt(s.m2_x.numpy() / n),
            "fp_max": s.max_x.numpy(),
            "q_active_count": s.active_y.numpy(),
            "q_mean": s.mean_y.numpy(),
            "q_std": np.sqrt(s.m2_y.numpy() / n),
            "firing_jaccard": _safe_div(s.active_both, union),
            "rel_amplitude_error": np.sqrt(_safe_div(s.sum_sq_diff, s.sum_sq_x)),
            "r": r,
            "active": active,
            "silenced": (s.m2_y.numpy() == 0) & (s.m2_x.numpy() > 0),
            "class": cls,
            "damage": np.where(active, 1.0 - r, np.nan),
            "r_lo": lo,
            "r_hi": hi,
            "r_defined": intervals.defined if intervals else nan,
            "uncertain": uncertain(r, lo, hi, active, Rules.of(cfg)),
        }
    )
    frame = frame.merge(weights, on="feature", how="left", validate="one_to_one")
    frame[list(FIDELITY_COLUMNS)] = (
        np.nan
    )  # filled for the sampled features by sweep.derive.fidelity
    return frame[list(FEATURE_COLUMNS)].astype({k: v[0] for k, v in FEATURE_COLUMNS.items()})
