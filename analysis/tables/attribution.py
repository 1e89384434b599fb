"""Per-part attribution: how much each compressed part (block × module kind) damages each layer.

A sweep over `compression.targets` × `compression.blocks` (conf/experiment/attribution.yaml)
compresses one part of the model at a time while the rest stays FP. Jobs are grouped by their
whole config but the selection (same sweep, method, bits, SAEs and tokens); in a group, a job
compressing one module kind of one block is a single-part job, and the one compressing every
kind of every block (blocks null) is the whole-model job.
"""

from __future__ import annotations

import pandas as pd

from analysis.formatting import config_value
from analysis.load.collect import Collection
from analysis.load.configs import canon, flat_config
from sweep.config.compression import GROUPS, KINDS, expand_targets
from sweep.results.columns import SURVIVED
from sweep.results.summary import Summary

TARGETS, BLOCKS = "compression.targets", "compression.blocks"
# What a job compresses: one part, every kind of one block, one kind of every block, the whole
# model, or anything else (several blocks, a group of kinds).
PART, BLOCK, KIND, WHOLE, OTHER = "part", "block", "kind", "whole", "other"
SCOPES = (PART, BLOCK, KIND, WHOLE, OTHER)
WHOLE_LABEL = "whole model"
# Keys that name a group beside its model, method and bits (the rest of the varying config).
NAMED = ("model.name", "compression.name", "bits", TARGETS, BLOCKS)
ATTRIBUTION = {
    "sweep": "sweep",
    "model": "model",
    "compression": "method",
    "setting": "configuration",
    "bits": "bits",
    "part": "compressed part",
    "sae": "SAE hook",
    "layer": "layer",
    "n_active": "active",
    "pct_damaged": "% damaged",
    "mean_damage": "mean damage 1 − r",
}


def selection(summary: Summary) -> tuple[tuple[str, ...], tuple[int, ...] | None] | None:
    """The module kinds and blocks (None: every block) a job compresses; None for a method
    without a selection (e.g. compression=mixed)."""
    node = (summary.config or {}).get("compression") or {}
    if "targets" not in node:
        return None
    blocks = node.get("blocks")
    return expand_targets(list(node["targets"])), (
        None if blocks is None else tuple(sorted(int(b) for b in blocks))
    )


def scope(kinds: tuple[str, ...], blocks: tuple[int, ...] | None) -> str:
    """PART, BLOCK, KIND, WHOLE or OTHER (see SCOPES)."""
    every_kind = kinds == KINDS
    if blocks is None:
        return WHOLE if every_kind else KIND if len(kinds) == 1 else OTHER
    if len(blocks) == 1:
        return PART if len(kinds) == 1 else BLOCK if every_kind else OTHER
    return OTHER


def part_label(kinds: tuple[str, ...], blocks: tuple[int, ...] | None) -> str:
    """'block 1 · mlp_out', 'every block · attn_qkv', 'block 0 · all kinds', 'whole model'."""
    if blocks is None and kinds == KINDS:
        return WHOLE_LABEL
    where = "every block" if blocks is None else "block" + "s" * (len(blocks) > 1)
    where += "" if blocks is None else " " + ",".join(map(str, blocks))
    named = [g for g, members in GROUPS.items() if members == kinds]
    what = "all kinds" if kinds == KINDS else named[0] if named else "+".join(kinds)
    return f"{where} · {what}"


def _kind_order(kinds: tuple[str, ...]) -> tuple[int, ...]:
    return tuple(KINDS.index(k) for k in kinds)


def selections(col: Collection) -> pd.DataFrame:
    """One row per job of a group with a partial-compression job: group, scope, part label,
    a sort order and the number of matrices it compressed."""
    rows = []
    varying = [k for k in col.dims.varying if k not in NAMED]
    for name, s in col.summaries.items():
        chosen = selection(s)
        if chosen is None:
            continue
        sweep, key = name.rsplit("/", 1)
        config = flat_config(s)
        rest = {k: v for k, v in config.items() if k not in (TARGETS, BLOCKS)}
        kinds, blocks = chosen
        what = scope(kinds, blocks)
        rows.append(
            {
                "sweep": sweep,
                "key": key,
                "group": f"{sweep}|{canon(rest)}",
                "model": s.model,
                "compression": s.compression,
                "setting": " ".join(
                    f"{col.dims.names[k]}={config_value(config.get(k))}" for k in varying
                ),
                "bits": s.bits,
                "scope": what,
                "part": part_label(kinds, blocks),
                "order": (SCOPES.index(what), blocks or (), _kind_order(kinds)),
                "n_matrices": s.metrics.n_compressed_matrices,
            }
        )
    if not rows:
        return pd.DataFrame(columns=["sweep", "key", "group", "scope", "part", "order"])
    t = pd.DataFrame(rows)
    partial = t.groupby("group")["scope"].transform(lambda g: g.ne(WHOLE).any()).astype(bool)
    return t[partial].reset_index(drop=True)


def part_features(col: Collection) -> pd.DataFrame:
    """The active features of every job in `selections`, with the job's selection columns."""
    sel = selections(col)
    cols = ["sweep", "key", "sae", "layer", "feature", "r", "damage", "class"]
    f = col.features
    if sel.empty or f.empty:
        return sel.reindex(columns=[*sel.columns, *cols[2:]])
    active = f.loc[f["active"].astype(bool), cols].astype({"sae": object, "class": object})
    return sel.merge(active, on=["sweep", "key"], how="inner", validate="one_to_many")


def attribution(col: Collection) -> pd.DataFrame:
    """Per job of a partial-compression group × SAE: active features, % damaged (not survived,
    by the job's own classes) and mean damage 1 − r over them; ordered by group, scope, part."""
    pf = part_features(col)
    if pf.empty:
        return pd.DataFrame(columns=[*ATTRIBUTION, "group", "scope", "key"])
    pf = pf.assign(damaged=pf["class"].ne(SURVIVED))
    ids = ["group", "sweep", "key", "model", "compression", "setting", "bits", "scope", "part"]
    t = (
        pf.groupby([*ids, "sae"], sort=False, dropna=False)
        .agg(
            layer=("layer", "first"),
            order=("order", "first"),
            n_active=("feature", "size"),
            pct_damaged=("damaged", "mean"),
            mean_damage=("damage", "mean"),
        )
        .reset_index()
    )
    t["pct_damaged"] *= 100
    t = t.sort_values(["group", "order", "layer", "sae"], kind="stable", ignore_index=True)
    return t.drop(columns="order")


def shown_columns(t: pd.DataFrame, names: dict[str, str], col: Collection) -> pd.DataFrame:
    """`t` with the display columns of `names`: sweep only when there are several,
    configuration (setting) only when something beyond method and bits varies."""
    drop = {"sweep"} if col.dims.sweeps == 1 else set()
    if t.empty or not t["setting"].astype(bool).any():
        drop.add("setting")
    return t.reindex(columns=[c for c in names if c not in drop])


def attribution_table(col: Collection) -> pd.DataFrame:
    """The report's attribution table: `attribution` with its display columns."""
    return shown_columns(attribution(col), ATTRIBUTION, col)


def worst_parts(col: Collection) -> pd.DataFrame:
    """For every job of a group with single-part jobs and each of its active features: the
    single-part job with the lowest r for that feature (worst_part) and that r (worst_r); none
    where every single part leaves the feature exactly as FP (r = 1: no part damages it)."""
    pf = part_features(col)
    out = ["sweep", "key", "sae", "feature", "worst_part", "worst_r"]
    singles = pf[pf["scope"].eq(PART) & pf["r"].notna()]
    if singles.empty:
        return pd.DataFrame(columns=out)
    singles = singles.sort_values(["r", "order"], kind="stable")
    worst = singles.drop_duplicates(["group", "sae", "feature"])
    worst = worst[worst["r"] < 1]
    worst = worst.rename(columns={"part": "worst_part", "r": "worst_r"})
    jobs = pf[["group", "sweep", "key", "sae", "feature"]]
    worst = worst[["group", "sae", "feature", "worst_part", "worst_r"]]
    return jobs.merge(worst, on=["group", "sae", "feature"]).reindex(columns=out)
