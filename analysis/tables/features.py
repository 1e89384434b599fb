"""Feature drill-down: the most damaged features of one cell, with their FP statistics."""

from __future__ import annotations

import pandas as pd

from analysis.formatting import number
from analysis.load.collect import AnalysisError, Collection
from analysis.load.contexts import contexts_text, load_contexts

COLUMNS = [
    "compression",
    "bits",
    "sae",
    "feature",
    "class",
    "r",
    "damage",
    "silenced",
    "fp_active_count",
    "fp_frequency",
    "fp_mean_active",
    "fp_max",
    "q_active_count",
    "firing_jaccard",
    "rel_amplitude_error",
]


def pick(
    col: Collection,
    model: str | None = None,
    bits: int | None = None,
    compression: str | None = None,
    sae: str | None = None,
    worst: int = 20,
    named: list[tuple[str | None, int]] | None = None,
) -> pd.DataFrame:
    """The selected jobs' features to show, with their job's sweep, key and configuration: the
    named ones (`(hook or None, index)`) if any, else the `worst` most damaged active ones."""
    f = col.features
    if f.empty:
        raise AnalysisError("no features in the collected jobs")
    chosen = {"model": model, "bits": bits, "compression": compression, "sae": sae}
    for name, value in chosen.items():
        if value is None:
            continue
        keep = f[name] == value
        if not keep.any():
            have = sorted(map(str, f[name].unique()))
            raise AnalysisError(f"no job with {name}={value}; available: {', '.join(have)}")
        f = f[keep]
    if named:
        hit = pd.Series(False, index=f.index)
        for hook, idx in named:
            hit |= (f["feature"] == idx) & ((f["sae"] == hook) if hook else True)
        if not hit.any():
            raise AnalysisError(f"no selected job has features {[i for _, i in named]}")
        top = f[hit]
    else:
        active = f[f["active"].astype(bool)]
        if active.empty:
            raise AnalysisError("no active features in the selected jobs")
        ordered = active.sort_values(
            ["damage", "feature"], ascending=[False, True], na_position="last"
        )
        top = ordered.groupby(["sweep", "key", "sae"], sort=False).head(worst)
    jobs = col.jobs[["sweep", "key", "extras"]].rename(columns={"extras": "configuration"})
    top = top.merge(jobs, on=["sweep", "key"], how="left")
    order = ["compression", "configuration", "bits", "sae", "damage"]
    return top.sort_values(order, ascending=[1, 1, 1, 1, 0]).reset_index(drop=True)


def worst_features(
    col: Collection,
    model: str | None = None,
    bits: int | None = None,
    compression: str | None = None,
    sae: str | None = None,
    worst: int = 20,
    named: list[tuple[str | None, int]] | None = None,
) -> pd.DataFrame:
    """The `worst` active features with the largest damage (1 − r) in each selected job (or
    the named ones), with their FP statistics."""
    top = pick(col, model, bits, compression, sae, worst, named)
    cols = list(COLUMNS) if col.dims.sweeps == 1 else ["sweep", *COLUMNS]
    if top["configuration"].fillna("").astype(bool).any():  # several configs: say which is which
        cols.insert(cols.index("bits") + 1, "configuration")
    return top[cols]


def contexts_report(col: Collection, picked: pd.DataFrame) -> str:
    """Each picked feature's top contexts as text, FP and compressed activation side by side."""
    blocks, loaded = [], {}
    for row in picked.to_dict("records"):
        job = f"{row['sweep']}/{row['key']}"
        if job not in loaded:
            directory = col.dirs.get(job)
            loaded[job] = load_contexts(directory) if directory else (None, "not read from files")
        jc, reason = loaded[job]
        config = row["configuration"] if isinstance(row["configuration"], str) else ""
        where = " ".join(filter(None, [row["compression"], f"{row['bits']}b", config]))
        head = (
            f"{row['sae']} feature {row['feature']}: {row['class']}, r {number(row['r'])}, "
            f"{where} (job {row['key']})"
        )
        body = (
            f"  no contexts: {reason}"
            if jc is None
            else contexts_text(jc, row["sae"], row["feature"])
        )
        blocks.append(f"{head.strip()}\n{body}")
    return "\n\n".join(blocks)


def format_table(frame: pd.DataFrame) -> str:
    """A fixed-width text table for a terminal (numbers to 3 significant digits)."""
    shown = frame.copy()
    for c in shown.columns:
        if pd.api.types.is_float_dtype(shown[c]):
            shown[c] = shown[c].map(number)
    return shown.to_string(index=False)
