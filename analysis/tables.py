"""Headline tables (CSV + Markdown): survival and behaviour per cell; quantization vs pruning."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analysis.collect import Collection
from analysis.overlap import overlap_table
from analysis.summarize import survival_summary

log = logging.getLogger("qfeat.analysis")

HEADLINE = {
    "model": "model",
    "layer": "layer",
    "sae": "SAE",
    "compression": "method",
    "bits": "bits",
    "sparsity": "sparsity",
    "n_active": "active",
    "pct_survived": "% survived",
    "survived_ci95": "survived 95% CI",
    "pct_blurred": "% blurred",
    "pct_destroyed": "% destroyed",
    "fp_ppl": "FP PPL",
    "q_ppl": "compressed PPL",
    "delta_ppl": "ΔPPL",
    "kl_mean": "KL",
    "cv_auc": "CV AUC",
    "top_predictor": "top predictor (sign, AUC)",
}
MATCHED = {
    "model": "model",
    "saes": "SAE",
    "bits": "bits",
    "reference": "reference",
    "matched_sparsity": "matched sparsity",
    "converged": "converged",
    "reference_ppl": "reference PPL",
    "pruned_ppl": "pruned PPL",
    "n_damaged_reference": "damaged (reference)",
    "n_damaged_pruned": "damaged (pruned)",
    "jaccard": "Jaccard",
    "spearman": "Spearman",
    "source": "overlap from",
}


@dataclass
class Table:
    """A written table: its name, caption, frame (raw numbers) and files."""

    name: str
    caption: str
    frame: pd.DataFrame
    csv: Path
    md: Path


def headline(col: Collection, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per model × SAE × method × bits: class percentages, PPL, KL, CV AUC, top predictor."""
    if col.per_sae.empty:
        return pd.DataFrame(columns=list(HEADLINE))
    job_cols = ["sweep", "key", "fp_ppl", "q_ppl", "delta_ppl", "kl_mean"]
    t = col.per_sae.merge(col.jobs.reindex(columns=job_cols), on=["sweep", "key"], how="left")
    for cls in ("survived", "blurred", "destroyed"):
        t[f"pct_{cls}"] = 100 * t[f"frac_{cls}"]
    ci = survival_summary(col.features, n_boot, seed)
    if len(ci):
        keys = ["sweep", "model", "sae", "compression", "bits"]
        ci = ci[[*keys, "survived_ci_low", "survived_ci_high"]].astype({"sae": object})
        t = t.astype({"sae": object}).merge(ci, on=keys, how="left")
        t["survived_ci95"] = [
            f"{100 * lo:.1f}–{100 * hi:.1f}" if not math.isnan(lo) else ""
            for lo, hi in zip(t["survived_ci_low"], t["survived_ci_high"], strict=True)
        ]
    t["top_predictor"] = [
        f"{n} {s}{a:.2f}" if isinstance(n, str) else ""
        for n, a, s in zip(
            t["top_predictor"], t["top_predictor_auc"], t["top_predictor_sign"], strict=True
        )
    ]
    if t["sweep"].nunique() > 1:
        return t.reindex(columns=["sweep", *HEADLINE])
    return t.reindex(columns=list(HEADLINE))


def matched(col: Collection) -> pd.DataFrame:
    """Per matched job (one per bits): matched sparsity, PPLs, Jaccard and Spearman."""
    t = overlap_table(col.jobs, col.features)
    if t.empty:
        return pd.DataFrame(columns=list(MATCHED))
    ppl = {}
    for key, s in col.summaries.items():
        ref = (s.get("matched") or {}).get("reference") or {}
        ppl[(key.split("/")[0], s["model"], int(s["bits"]), s["compression"])] = (
            ref.get("q_ppl"),
            s["metrics"].get("q_ppl"),
        )
    jobs = col.jobs[col.jobs["compression"].str.endswith("_matched")]
    rows = {(r.sweep, r.model, int(r.bits)): r.compression for r in jobs.itertuples()}
    t["reference_ppl"] = [
        ppl.get((s, m, b, rows.get((s, m, b))), (None, None))[0]
        for s, m, b in zip(t["sweep"], t["model"], t["bits"], strict=True)
    ]
    t["pruned_ppl"] = [
        ppl.get((s, m, b, rows.get((s, m, b))), (None, None))[1]
        for s, m, b in zip(t["sweep"], t["model"], t["bits"], strict=True)
    ]
    t = t.sort_values(["sweep", "model", "bits"], ignore_index=True)
    cols = ["sweep", *MATCHED] if t["sweep"].nunique() > 1 else list(MATCHED)
    return t.reindex(columns=cols)


def _cell(v: object) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.3e}"
    return str(v).replace("|", "\\|")


def to_markdown(frame: pd.DataFrame, names: dict[str, str] | None = None) -> str:
    """A GitHub-flavoured Markdown table (no tabulate dependency); NaN shows as –."""
    names = names or {}
    header = [names.get(c, c) for c in frame.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def write_tables(col: Collection, out: Path, n_boot: int = 2000, seed: int = 0) -> list[Table]:
    """Write headline and matched tables as CSV and Markdown under out/."""
    out.mkdir(parents=True, exist_ok=True)
    specs = [
        (
            "headline",
            "Survival and behaviour per model × SAE × method × bit-width "
            "(percentages of active features).",
            headline(col, n_boot, seed),
            HEADLINE,
        ),
        (
            "matched",
            "Quantization vs pruning at matched perplexity, per bit-width.",
            matched(col),
            MATCHED,
        ),
    ]
    tables = []
    for name, caption, frame, names in specs:
        if frame.empty:
            log.info("table %s skipped: no rows", name)
            continue
        csv, md = out / f"{name}.csv", out / f"{name}.md"
        frame.to_csv(csv, index=False)
        md.write_text(to_markdown(frame, names))
        tables.append(Table(name, caption, frame, csv, md))
        log.info("table %s written (%d rows)", name, len(frame))
    return tables
