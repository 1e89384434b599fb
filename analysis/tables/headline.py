"""Headline tables (CSV + Markdown): survival and behaviour per cell; quantization vs pruning."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.formatting import cell, config_value, number, percent
from analysis.load.collect import Collection
from analysis.tables.additivity import ADDITIVITY, additivity_caption, additivity_table
from analysis.tables.attribution import ATTRIBUTION, attribution_table
from analysis.tables.fit import FIT_CAPTIONS, FIT_NAMES, NUMERIC, fidelity, fit_names, sae_fit
from analysis.tables.gguf import GGUF_NAMES, gguf_ladder
from analysis.tables.overlap import overlap_table
from analysis.tables.summarize import CELL, survival_summary
from analysis.tables.uncertainty import (
    MIN_ACTIVE,
    OVERLAP_PAIRS,
    TOKEN_SET,
    min_active_sensitivity,
    overlap_pairs,
    token_set,
)
from sweep.results.files import SUMMARY_FILE

log = logging.getLogger("qfeat.analysis")

# Identifying columns first (the varying config keys are inserted after "bits"), then numbers.
KEYS = {
    "model": "model",
    "sae": "SAE hook",
    "layer": "layer",
    "compression": "method",
    "bits": "bits",
}
NUMBERS = {
    "sparsity": "sparsity",
    "n_active": "active",
    "pct_survived": "% survived",
    "survived_ci95": "survived 95% CI (features)",
    "survived_tokens": "survived, token interval",
    "pct_blurred": "% blurred",
    "pct_destroyed": "% destroyed",
    "pct_uncertain": "% uncertain",
    "fp_ppl": "FP PPL",
    "q_ppl": "compressed PPL",
    "delta_ppl": "ΔPPL",
    "kl_mean": "KL",
    "cv_auc": "CV AUC",
    "top_predictor": "top predictor (sign, AUC)",
}
HEADLINE = {**KEYS, **NUMBERS}
PERCENT = (
    "pct_survived",
    "pct_blurred",
    "pct_destroyed",
    "pct_uncertain",
    "pct_survived_half",
    "deployed_pct_survived",
    "pct_damaged",
    "pct_underestimated",
)
MATCHED = {
    "model": "model",
    "saes": "SAE",
    "extras": "configuration",
    "bits": "bits",
    "baseline": "baseline",
    "matched_sparsity": "matched sparsity",
    "converged": "converged",
    "baseline_ppl": "baseline PPL",
    "pruned_ppl": "pruned PPL",
    "n_damaged_baseline": "damaged (baseline)",
    "n_damaged_pruned": "damaged (pruned)",
    "jaccard": "Jaccard",
    "spearman": "Spearman",
}


@dataclass
class Table:
    """A written table: its name, caption, frame (raw numbers) and files."""

    name: str
    caption: str
    frame: pd.DataFrame
    csv: Path
    md: Path


def headline_names(col: Collection) -> dict[str, str]:
    """Column headers of the headline table: fixed ones plus each varying config key's name."""
    return {"sweep": "sweep", **KEYS, **col.dims.columns(), **NUMBERS}


def headline(col: Collection, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """One row per job × SAE: class percentages with their own CI, PPL, KL, CV AUC, predictor."""
    config = list(col.dims.columns())
    columns = [*KEYS, *config, *NUMBERS]
    if col.dims.sweeps > 1:
        columns.insert(0, "sweep")
    if col.per_sae.empty:
        return pd.DataFrame(columns=columns)
    job_cols = ["sweep", "key", "fp_ppl", "q_ppl", "delta_ppl", "kl_mean"]
    t = col.per_sae.merge(col.jobs.reindex(columns=job_cols), on=["sweep", "key"], how="left")
    for cls in ("survived", "blurred", "destroyed", "uncertain"):
        t[f"pct_{cls}"] = 100 * t[f"frac_{cls}"].astype(float) if f"frac_{cls}" in t else np.nan
    t["survived_tokens"] = [
        "" if pd.isna(lo) else f"{percent(100 * lo)}–{percent(100 * hi)}"
        for lo, hi in zip(t["token_survived_lo"], t["token_survived_hi"], strict=True)
    ]
    ci = survival_summary(col, n_boot, seed)
    t["survived_ci95"] = ""
    if len(ci):
        ci = ci[[*CELL, "survived_ci_low", "survived_ci_high"]]
        t = t.astype({"sae": object}).merge(ci, on=CELL, how="left", validate="one_to_one")
        t["survived_ci95"] = [
            "" if pd.isna(lo) else f"{percent(100 * lo)}–{percent(100 * hi)}"
            for lo, hi in zip(t["survived_ci_low"], t["survived_ci_high"], strict=True)
        ]
    t["top_predictor"] = [
        f"{n} {s}{number(a)}" if isinstance(n, str) else ""
        for n, a, s in zip(
            t["top_predictor"], t["top_predictor_auc"], t["top_predictor_sign"], strict=True
        )
    ]
    for c in config:
        t[c] = t[c].map(config_value)
    return t.reindex(columns=columns)


def matched(col: Collection) -> pd.DataFrame:
    """Per matched job (one per bits and config): matched sparsity, PPLs, Jaccard, Spearman."""
    t = overlap_table(col.jobs)
    cols = ["sweep", *MATCHED] if col.dims.sweeps > 1 else list(MATCHED)
    if t.empty:
        return pd.DataFrame(columns=cols)
    summaries = [col.summaries[f"{s}/{k}"] for s, k in zip(t["sweep"], t["key"], strict=True)]
    t["baseline_ppl"] = [s.matched.baseline.q_ppl if s.matched else None for s in summaries]
    t["pruned_ppl"] = [s.metrics.q_ppl for s in summaries]
    t = t.sort_values(["sweep", "model", "extras", "bits"], ignore_index=True)
    if not t["extras"].fillna("").astype(bool).any():
        cols.remove("extras")
    return t.reindex(columns=cols)


def key_columns(frame: pd.DataFrame) -> int:
    """How many leading columns identify a row (the rest are measured numbers)."""
    numeric = {*NUMBERS, *NUMERIC, "matched_sparsity", "n_tokens", "n_damaged_a", "min_active"}
    numbers = [i for i, c in enumerate(frame.columns) if c in numeric]
    return numbers[0] if numbers else len(frame.columns)


def to_markdown(frame: pd.DataFrame, names: dict[str, str] | None = None) -> str:
    """A GitHub-flavoured Markdown table (no tabulate dependency); NaN shows as –."""
    names = names or {}
    header = [names.get(c, c) for c in frame.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    pct = [c in PERCENT for c in frame.columns]
    for row in frame.itertuples(index=False):
        cells = (cell(v, p).replace("|", "\\|") for v, p in zip(row, pct, strict=True))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_tables(
    col: Collection, out: Path, n_boot: int = 2000, seed: int = 0
) -> tuple[list[Table], list[tuple[str, str]]]:
    """Write headline, matched, SAE-fit and fidelity tables as CSV and Markdown under out/;
    returns the tables written and (name, reason) of the newer ones skipped for lack of data."""
    out.mkdir(parents=True, exist_ok=True)
    specs = [
        (
            "headline",
            "Survival and behaviour per model × SAE × method × bit-width "
            "(percentages of active features).",
            headline(col, n_boot, seed),
            headline_names(col),
        ),
        (
            "matched",
            "Quantization vs pruning at matched perplexity, per bit-width.",
            matched(col),
            MATCHED,
        ),
        (
            "gguf",
            "GGUF files: survival on qfeat's forward of the dequantized weights and on "
            "llama.cpp's own forward, and the gap between their next-token log-probs.",
            gguf_ladder(col),
            GGUF_NAMES,
        ),
    ]
    attributed, additive = attribution_table(col), additivity_table(col)
    specs += [
        (
            "attribution",
            "Each part compressed alone (the rest FP), and the whole model: per measured layer, "
            "the % of active features damaged (not survived, by the job's own classes) and "
            "their mean damage 1 − r.",
            attributed,
            ATTRIBUTION,
        ),
        ("additivity", additivity_caption(additive), additive, ADDITIVITY),
    ]
    specs += [
        (n, FIT_CAPTIONS[n], f(col), fit_names(col)[n])
        for n, f in (("sae_fit", sae_fit), ("fidelity", fidelity))
    ]
    specs += [
        (
            "token_set",
            "Has survival settled with the number of tokens? Survival on the first half of "
            "each job's tokens and on all of them, the token-bootstrap interval (blocks of "
            "whole sequences resampled) and the share of active features whose r interval "
            "straddles a class threshold.",
            token_set(col),
            TOKEN_SET,
        ),
        (
            "min_active",
            "What survival.min_active_tokens buys: for each threshold, the features active on "
            "at least that many FP tokens, their % survived and the % whose r interval "
            "(widened to hold r) straddles a class threshold.",
            min_active_sensitivity(col),
            MIN_ACTIVE,
        ),
        (
            "overlap_pairs",
            "Damage overlap of every pair of jobs on the same model, SAEs and tokens: "
            "Jaccard of the damaged (not survived) sets and Spearman of damage 1 − r over "
            "the features active in both.",
            overlap_pairs(col),
            OVERLAP_PAIRS,
        ),
    ]
    tables, skipped = [], []
    for name, caption, frame, names in specs:
        if frame.empty:
            log.info("table %s skipped: no rows", name)
            if name in FIT_NAMES:
                skipped.append(
                    (name, f"no job's {SUMMARY_FILE} has a {name} block (older jobs, or off)")
                )
            continue
        csv, md = out / f"{name}.csv", out / f"{name}.md"
        frame.to_csv(csv, index=False)
        md.write_text(to_markdown(frame, names))
        tables.append(Table(name, caption, frame, csv, md))
        log.info("table %s written (%d rows)", name, len(frame))
    return tables, skipped
