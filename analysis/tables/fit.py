"""SAE fit and steering/ablation fidelity tables, one row per job × SAE, from summary.json.

Rows carry the sweep's varying config keys (e.g. `sae.name` when SAE families are swept at
one hook), so two jobs that differ only there are told apart.

`sae_fit` (per hook: FP and compressed explained variance, L0, CE loss clean and spliced) says
how well the FP SAE still fits the compressed model; `fidelity` (per hook: sample size, α and
mean steering fidelity of surviving vs damaged features) says whether damage by r is also damage
to steering. Jobs written before these blocks existed give no row.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import pandas as pd

from analysis.formatting import config_value
from analysis.load.collect import Collection

FIT_METRICS = {
    "explained_variance": "explained variance",
    "l0": "L0",
    "ce_loss": "CE loss",
    "ce_loss_spliced": "CE loss spliced",
}
SIDES = {"fp": "FP", "q": "compressed"}
IDS = {"model": "model", "compression": "method", "bits": "bits", "sae": "SAE hook"}
FIT = {
    **IDS,
    **{
        f"{side}_{m}": f"{name} ({who})"
        for m, name in FIT_METRICS.items()
        for side, who in SIDES.items()
    },
    "ce_spliced_increase_fp": "spliced CE − CE (FP)",
    "ce_spliced_increase_q": "spliced CE − CE (compressed)",
}
FIDELITY = {
    **IDS,
    "n_features": "features sampled",
    "n_damaged": "of them damaged",
    "alpha": "α",
    **{
        f"mean_{mode}_r_{group}": f"mean {mode} r ({group})"
        for mode in ("steer", "ablate")
        for group in ("survived", "damaged")
    },
    "spearman_r_vs_steer_r": "Spearman(r, steer r)",
    "spearman_r_vs_ablate_r": "Spearman(r, ablate r)",
}
FIT_NAMES = {"sae_fit": FIT, "fidelity": FIDELITY}
FIT_TITLES = {
    "sae_fit": "SAE fit on FP and compressed",
    "fidelity": "Steering and ablation fidelity",
}
FIT_CAPTIONS = {
    "sae_fit": "How well each FP SAE fits the FP and the compressed model's activations "
    "(explained variance, L0, next-token CE loss clean and with the hook replaced by the SAE "
    "reconstruction).",
    "fidelity": "Steering / ablation along sampled features in FP vs compressed: does a "
    "feature that survives by r also steer the same? (1 = same effect on next-token log-probs).",
}
NUMERIC = {c for names in FIT_NAMES.values() for c in names if c not in IDS}


def fit_names(col: Collection) -> dict[str, dict[str, str]]:
    """Column headers of each table: its fixed ones and the sweep's varying config keys."""
    return {name: {**IDS, **col.dims.columns(), **names} for name, names in FIT_NAMES.items()}


def _job_rows(col: Collection, block: str) -> list[tuple[dict[str, Any], str, dict[str, Any]]]:
    """(job identifiers, hook, per-hook value) for every job whose summary has `block`."""
    out = []
    for job in col.jobs.to_dict("records"):
        summary = col.summaries[f"{job['sweep']}/{job['key']}"]
        per_hook = getattr(summary, block) or {}
        ids = {"sweep": job["sweep"], **{k: job[k] for k in IDS if k in job}}
        ids |= {c: config_value(job[c]) for c in col.dims.columns() if c in job}
        out += [(ids, hook, asdict(v)) for hook, v in per_hook.items()]
    return out


def _ordered(rows: list[dict[str, Any]], names: dict[str, str], col: Collection) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    config = [c for c in col.dims.columns() if c in frame.columns]
    known = [*IDS, *config, *(c for c in names if c not in IDS)]
    extra = [c for c in frame.columns if c not in known and c != "sweep"]
    lead = ["sweep"] if col.dims.sweeps > 1 else []
    return frame.reindex(columns=[*lead, *known, *extra])


def sae_fit(col: Collection) -> pd.DataFrame:
    """One row per job × SAE: each fit metric on FP and on compressed, and how much splicing
    the SAE in raises the CE loss on each."""
    rows = []
    for ids, hook, fit in _job_rows(col, "sae_fit"):
        row = {**ids, "sae": hook}
        for side in SIDES:
            row.update({f"{side}_{m}": (fit.get(side) or {}).get(m) for m in FIT_METRICS})
            ce, spliced = row[f"{side}_ce_loss"], row[f"{side}_ce_loss_spliced"]
            row[f"ce_spliced_increase_{side}"] = (
                spliced - ce if ce is not None and spliced is not None else None
            )
        rows.append(row)
    return _ordered(rows, FIT, col)


def fidelity(col: Collection) -> pd.DataFrame:
    """One row per job × SAE from summary.json's fidelity block (null blocks give no row)."""
    rows = [
        {**ids, "sae": hook, **{k: v for k, v in block.items() if not isinstance(v, dict | list)}}
        for ids, hook, block in _job_rows(col, "fidelity")
    ]
    return _ordered(rows, FIDELITY, col)
