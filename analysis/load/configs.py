"""Which config keys vary across a sweep's jobs, and labels naming them: a series is one config."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from analysis.formatting import config_value
from sweep.config.keyed import AXIS_FIELDS, NON_KEY_FIELDS
from sweep.results.summary import Summary

# Top-level config fields that say where/how a job runs, not what it measures, and the sweep
# axes (their values are the method's own options).
RUN_ONLY = (*NON_KEY_FIELDS, *AXIS_FIELDS)
# Keys that form the x-axis of the bit-width figures rather than a series.
AXIS = ("bits",)
# Config keys already shown by a frame's own identity columns (model, compression, bits).
SHOWN_AS = {
    "model.name": "model",
    "compression.name": "compression",
    "sae.layer": "layer",
    "bits": "bits",
}
# Config keys that identify the SAE (the family is sae.name), beside the per-feature hook.
SAE_PREFIX = "sae."
# Frames hold each varying key as column "config.<key>": no clash with a frame's own columns
# (a job's measured `sparsity` beside the config's `sparsity`).
COLUMN_PREFIX = "config."


def column(key: str) -> str:
    """The frame column holding config key `key`."""
    return COLUMN_PREFIX + key


def flat_config(summary: Summary) -> dict[str, Any]:
    """The summary's config flattened to dotted keys, minus RUN_ONLY, Hydra's and private
    (`_wandb`) entries; lists become tuples. The method's bit-width (compression.bits, or its
    baseline's) is the `bits` axis, as summary.bits gives it."""
    config = summary.config or {
        "model": {"name": summary.model},
        "compression": {"name": summary.compression},
    }
    out: dict[str, Any] = {"bits": summary.bits}

    def walk(node: dict[str, Any], prefix: str) -> None:
        for k, v in node.items():
            if not prefix and (k in RUN_ONLY or k == "hydra" or k.startswith("_")):
                continue
            if isinstance(v, dict) and v:
                walk(v, f"{prefix}{k}.")
            elif not (prefix.startswith("compression.") and k == "bits"):
                out[f"{prefix}{k}"] = tuple(v) if isinstance(v, list) else v

    walk(config, "")
    return out


def canon(v: Any) -> str:
    """A value as canonical JSON, to compare configs (None, tuples, NaN) by value."""
    return json.dumps(v, sort_keys=True, default=str)


def short_names(keys: list[str]) -> dict[str, str]:
    """Shortest unambiguous dotted suffix of each key; `group.name` reads as `group`."""
    paths = {k: k[: -len(".name")] if k.endswith(".name") else k for k in keys}
    out = {}
    for k, path in paths.items():
        parts = path.split(".")
        for n in range(1, len(parts) + 1):
            suffix = ".".join(parts[-n:])
            clash = any(
                o != k and (p == suffix or p.endswith("." + suffix)) for o, p in paths.items()
            )
            if not clash:
                break
        out[k] = suffix
    return out


def _splitting(table: pd.DataFrame, keys: list[str], base: list[str]) -> list[str]:
    """The keys that take ≥ 2 values among the jobs sharing the same `base` values."""
    if not keys:
        return []
    values = table[keys].map(canon)
    groups = values.groupby(table[base].map(canon).agg("|".join, axis=1)) if base else [(0, values)]
    return [k for k in keys if any(g[k].nunique() > 1 for _, g in groups)]


def _sorted(values: Any) -> list[Any]:
    """Distinct config values in order where they compare (numbers, strings), else as met."""
    values = list(values)
    try:
        return sorted(values, key=lambda v: (v is None, v))
    except TypeError:
        return values


@dataclass
class Dimensions:
    """The sweep's varying config: keys, display names and each job's values and labels."""

    varying: list[str]  # every config key whose value differs between jobs
    labelled: list[str]  # the varying keys a label needs beyond model, method, layer and bits
    shown: list[str]  # the varying keys a table shows as columns (see dimensions())
    names: dict[str, str]  # display name of each varying key
    # per (sweep, key): the varying values and labels: `extras` (every labelled key),
    # `sae_name` (the varying sae.* keys) and `setting` (the labelled keys but sae.*)
    jobs: pd.DataFrame
    sweeps: int = 1
    values: dict[str, list[Any]] = field(default_factory=dict)

    def columns(self) -> dict[str, str]:
        """Frame column → display name of each key a table shows beside model/method/bits."""
        return {column(k): self.names[k] for k in self.shown}


def dimensions(summaries: dict[str, Summary]) -> Dimensions:
    """Find the varying config keys across jobs ('sweep/key' → summary) and label each job."""
    rows = []
    for name, s in summaries.items():
        sweep, key = name.rsplit("/", 1)
        rows.append({"sweep": sweep, "key": key, **flat_config(s)})
    # object dtype keeps each value's type (an int beside a null stays an int, not 32.0)
    table = pd.DataFrame(rows, dtype=object) if rows else pd.DataFrame(columns=["sweep", "key"])
    keys = [c for c in table.columns if c not in ("sweep", "key")]
    table[keys] = table[keys].astype(object).where(table[keys].notna(), None)
    varying = [k for k in keys if table[k].map(canon).nunique() > 1]
    base = ["sweep", *[k for k in SHOWN_AS if k in table and k not in AXIS]]
    extra = [k for k in varying if k not in SHOWN_AS]
    labelled = _splitting(table, extra, base)
    # Table columns: keys with two values present, or varying within one sweep; a key only some
    # jobs have (another qfeat version's sweep) is in the Configuration section, not a column.
    within = _splitting(table, extra, ["sweep"])
    shown = [k for k in extra if k in within or table[k].dropna().map(canon).nunique() > 1]
    sae_keys = [k for k in varying if k.startswith(SAE_PREFIX) and k not in SHOWN_AS]
    sae_keys = _splitting(table, sae_keys, [k for k in ("sweep", "model.name") if k in table])
    names = short_names(varying)

    def describe(keys: list[str]) -> list[str]:
        return [
            " ".join(f"{names[k]}={config_value(r[k])}" for k in keys if r[k] is not None)
            for _, r in table.iterrows()
        ]

    out = table[["sweep", "key", *varying]].rename(columns={k: column(k) for k in varying})
    out["extras"] = describe(labelled)
    out["sae_name"] = describe(sae_keys)
    out["setting"] = describe([k for k in labelled if not k.startswith(SAE_PREFIX)])
    twins = table[["sweep", *keys]].map(canon).agg("|".join, axis=1).duplicated(keep=False)
    for c in ("extras", "setting"):  # identical configs under different keys: name the job
        out.loc[twins, c] = (out.loc[twins, c] + " job=" + out.loc[twins, "key"]).str.strip()
    values = {k: _sorted({canon(v): v for v in table[k]}.values()) for k in varying}
    return Dimensions(varying, labelled, shown, names, out, table["sweep"].nunique(), values)


def attach(frame: pd.DataFrame, dims: Dimensions) -> pd.DataFrame:
    """`frame` (with sweep and key columns) plus each job's varying values and labels."""
    if frame.empty:
        return frame
    return frame.merge(dims.jobs, on=["sweep", "key"], how="left", validate="many_to_one")
