"""Does a feature that survives by r also act the same? Steering and ablation fidelity per job.

A bounded sample of each SAE's active features (the most damaged first, then random survivors,
`fidelity.max_features` in all, plus every watched feature) is steered and ablated in the
compressed model and then, with the compressed model freed, in the reloaded FP model; the
per-feature comparison fills the fidelity columns of features.parquet.
"""

from collections.abc import Callable

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig
from sae_lens import SAE
from scipy.stats import spearmanr

from sweep.derive.steering import ABLATE, STEER, Effects, feature_effects, fidelity
from sweep.inputs.hooked import HookedLM
from sweep.results.columns import SURVIVED
from sweep.results.summary import FidelitySummary

MODES = (STEER, ABLATE)


def sample_features(frame: pd.DataFrame, cap: int, watch: list[int], seed: int) -> list[int]:
    """Active features of one SAE to intervene on: up to ⌈cap/2⌉ most damaged (lowest r),
    random survivors up to `cap` in all, and every watched active feature."""
    active = frame[frame["active"]]
    damaged = active[active["class"] != SURVIVED].sort_values("r", kind="stable")
    n_damaged = min(len(damaged), (cap + 1) // 2)
    survivors = active[active["class"] == SURVIVED]
    n_survivors = min(len(survivors), cap - n_damaged)
    picked = set(damaged["feature"].iloc[:n_damaged])
    picked |= set(survivors["feature"].sample(n_survivors, random_state=seed))
    picked |= set(active["feature"]) & set(watch)
    return sorted(int(f) for f in picked)


def _effects(
    lm: HookedLM,
    saes: dict[str, SAE],
    samples: dict[str, list[int]],
    scales: dict[str, torch.Tensor],
    tokens: torch.Tensor,
    fid: DictConfig,
    first: int,
    batch_size: int,
) -> dict[tuple[str, str], Effects]:
    """Steering and ablation effects of every sampled feature in one model."""
    out = {}
    for hook in (h for h in saes if samples[h]):
        by_mode = feature_effects(
            lm,
            saes[hook],
            hook,
            samples[hook],
            tokens,
            MODES,
            fid.alpha,
            scales[hook],
            first,
            batch_size,
        )
        out.update({(hook, mode): effects for mode, effects in by_mode.items()})
    return out


def measure_fidelity(
    cfg: DictConfig,
    frame: pd.DataFrame,
    saes: dict[str, SAE],
    compressed: HookedLM,
    free_compressed: Callable[[], None],
    load_fp: Callable[[], HookedLM],
    tokens: torch.Tensor,
    first: int,
) -> dict[str, FidelitySummary]:
    """Fill `frame`'s fidelity columns in place; returns the per-SAE summary (empty when off)."""
    fid = cfg.fidelity
    if fid.max_features == 0 and not cfg.survival.watch:
        free_compressed()
        return {}
    samples, scales = {}, {}
    for hook, part in frame.groupby("sae", sort=False):
        samples[hook] = sample_features(part, fid.max_features, list(cfg.survival.watch), cfg.seed)
        peaks = part.set_index("feature")["fp_max"]
        scales[hook] = torch.tensor([peaks[f] for f in samples[hook]], dtype=torch.float64)
    batch_size = cfg.runtime.batch_size
    q = _effects(compressed, saes, samples, scales, tokens, fid, first, batch_size)
    free_compressed()
    fp = _effects(load_fp(), saes, samples, scales, tokens, fid, first, batch_size)
    summary = {}
    for hook, features in samples.items():
        if not features:
            continue
        rows = frame.index[(frame["sae"] == hook) & frame["feature"].isin(features)]
        for mode in MODES:
            scores = fidelity(fp[hook, mode], q[hook, mode])
            frame.loc[rows, f"{mode}_r"] = scores["r"]
            frame.loc[rows, f"{mode}_kl_fp"] = fp[hook, mode].kl.numpy()
            frame.loc[rows, f"{mode}_kl_q"] = q[hook, mode].kl.numpy()
            frame.loc[rows, f"{mode}_kl_ratio"] = scores["kl_ratio"]
        summary[hook] = fidelity_summary(frame.loc[rows], fid.alpha)
    return summary


def _mean(values: pd.Series) -> float | None:
    values = values.dropna()
    return float(values.mean()) if len(values) else None


def fidelity_summary(sampled: pd.DataFrame, alpha: float) -> FidelitySummary:
    """Per SAE: how many features were checked, mean fidelity of survivors vs damaged, and
    whether r predicts it (Spearman of r vs steering/ablation fidelity)."""
    survived = sampled["class"] == SURVIVED
    out = {"n_features": len(sampled), "n_damaged": int((~survived).sum()), "alpha": alpha}
    for mode in MODES:
        col = sampled[f"{mode}_r"]
        out[f"mean_{mode}_r_survived"] = _mean(col[survived])
        out[f"mean_{mode}_r_damaged"] = _mean(col[~survived])
        both = sampled[["r", f"{mode}_r"]].dropna()
        rho = spearmanr(both["r"], both[f"{mode}_r"]).statistic if len(both) > 2 else np.nan
        out[f"spearman_r_vs_{mode}_r"] = None if np.isnan(rho) else float(rho)
    return FidelitySummary(**out)
