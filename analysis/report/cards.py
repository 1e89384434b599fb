"""Feature cards: what a damaged, watched or named feature fired on before and after compression.

A card shows a feature's recorded top contexts with tokens shaded by FP and by compressed
activation side by side, an FP-vs-compressed scatter of the recorded activations, and its
survival, fidelity and FP statistics. Cards are built from result files only.
"""

from __future__ import annotations

import base64
import html
import io
import logging
import re
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from analysis.figures.base import CLASS_COLORS
from analysis.formatting import cell, number
from analysis.load.collect import Collection
from analysis.load.contexts import (
    JobContexts,
    Token,
    Window,
    feature_windows,
    load_contexts,
    shown_text,
)
from analysis.tables.attribution import worst_parts
from analysis.tables.summarize import label
from analysis.workers import pool, shared
from sweep.results.columns import SURVIVED

log = logging.getLogger("qfeat.analysis")

# Statistics a card lists, in order (absent or NaN ones are left out).
STATS = {
    "class": "class",
    "r": "r (FP vs compressed)",
    "r_interval": "r token-bootstrap interval",
    "firing_jaccard": "firing-set Jaccard",
    "rel_amplitude_error": "relative amplitude error",
    "steer_r": "steering fidelity r",
    "steer_kl_ratio": "steering KL ratio (q / FP)",
    "ablate_r": "ablation fidelity r",
    "ablate_kl_ratio": "ablation KL ratio (q / FP)",
    "fp_active_count": "FP active tokens",
    "q_active_count": "compressed active tokens",
    "fp_frequency": "FP firing frequency",
    "fp_mean_active": "FP mean when firing",
    "fp_max": "FP max",
    "dec_norm": "decoder norm",
    "worst_part": "part damaging it most alone (its r)",
}
MOST_DAMAGED = "most damaged"  # a card's reason: one of its job's n most damaged features
FP_RGB, Q_RGB = "25,113,194", "232,89,12"
MAX_ALPHA = 0.7  # the feature's maximum: strong shading that leaves the token readable
CSS = """
.card{border:1px solid #ced4da;border-radius:4px;padding:.5rem .8rem;margin:1rem 0}
.card h3{margin:.2rem 0;font-size:1.05rem}.card .why{color:#495057;font-size:.85rem;margin:0}
.cardtop{display:flex;gap:1rem;align-items:flex-start;flex-wrap:wrap}
.cardtop img{width:240px;border:none}table.stats td{padding:.05rem .4rem}
table.ctx{width:100%;margin:.5rem 0}table.ctx th.tx{text-align:left}
table.ctx td.tx{text-align:left;font-family:monospace;white-space:pre-wrap;
overflow-wrap:anywhere;font-size:.78rem;width:40%}
.tk{border-radius:2px}.tk.c{outline:1.5px solid #212529}
"""


@dataclass
class Card:
    """One feature of one job, ready to render."""

    anchor: str
    title: str
    job: str
    why: list[str]
    stats: dict[str, Any]
    windows: list[Window]
    scale: float
    scatter: bytes | None


def select(features: pd.DataFrame, n: int, named: list[tuple[str | None, int]]) -> pd.DataFrame:
    """One job's carded features: its n most damaged active ones (blurred or destroyed, lowest r
    first), every watched one and every named one, each once, with a `why` column saying which."""
    why: dict[tuple[str, int], list[str]] = {}
    active = features[features["active"].astype(bool) & features["damage"].notna()]
    active = active[active["class"] != SURVIVED]  # a survivor is not damaged, however low its r
    ranked = active.sort_values(["damage", "feature"], ascending=[False, True]).head(n)
    for i, (sae, f) in enumerate(zip(ranked["sae"], ranked["feature"], strict=True)):
        why.setdefault((str(sae), int(f)), []).append(f"{MOST_DAMAGED} #{i + 1}")
    for sae, f in features.loc[features["watched"], ["sae", "feature"]].itertuples(index=False):
        why.setdefault((str(sae), int(f)), []).append("watched")
    for hook, idx in named:
        hit = features[(features["feature"] == idx) & ((features["sae"] == hook) if hook else True)]
        for sae in hit["sae"]:
            why.setdefault((str(sae), idx), []).append("named")
    keyed = features.set_index([features["sae"].astype(str), features["feature"].astype(int)])
    rows = keyed.loc[list(why)] if why else keyed.iloc[:0]
    return rows.assign(why=[", ".join(why[k]) for k in rows.index]).reset_index(drop=True)


def scatter_png(rows: pd.DataFrame, scale: float) -> bytes | None:
    """A small PNG: FP vs compressed activation at every recorded position of the feature."""
    if rows.empty:
        return None
    pairs = rows.drop_duplicates(["seq", "pos"])  # a position in both tops is drawn once, as FP
    n_both = len(rows) - len(pairs)
    # A fixed layout: the card's few labels fit these margins, and constrained layout's solver
    # took 40% of each card's drawing time (40 cards in the default report).
    fig, ax = plt.subplots(figsize=(2.6, 2.5))
    fig.subplots_adjust(left=0.2, bottom=0.17, right=0.96, top=0.9)
    ax.plot([0, scale], [0, scale], color="#adb5bd", lw=0.8, zorder=1)
    for name, rgb, mask in (
        ("top by FP", FP_RGB, pairs["ranked_by"] == "fp"),
        ("top by compressed", Q_RGB, pairs["ranked_by"] == "q"),
    ):
        part = pairs[mask]
        color = tuple(int(c) / 255 for c in rgb.split(","))
        ax.scatter(part["fp_act"], part["q_act"], s=12, color=color, label=name, zorder=2)
    ax.set_xlabel("FP activation", fontsize=7)
    ax.set_ylabel("compressed activation", fontsize=7)
    ax.set_title(f"{len(pairs)} recorded positions ({n_both} in both tops)", fontsize=7)
    ax.tick_params(labelsize=6)
    ax.legend(fontsize=6, loc="upper left")
    ax.grid(alpha=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def r_interval(row: dict[str, Any]) -> str | None:
    """'lo–hi' of r's token-bootstrap interval, flagged when it straddles a class threshold
    (None when the job has none)."""
    lo, hi = row.get("r_lo"), row.get("r_hi")
    if lo is None or pd.isna(lo):
        return None
    flag = " (uncertain: straddles a class threshold)" if row.get("uncertain") else ""
    return f"{number(lo)}–{number(hi)}{flag}"


def _anchor(*parts: object) -> str:
    return "card-" + re.sub(r"[^A-Za-z0-9_-]+", "-", "-".join(map(str, parts)))


def with_worst_part(feats: pd.DataFrame, worst: pd.DataFrame) -> pd.DataFrame:
    """One job's features plus `worst_part`: the single-part job of its group with the lowest r
    for the feature, and that r (absent where the sweep has no single-part job for it)."""
    ids = ["sweep", "key", "sae", "feature"]
    mine = worst.merge(feats[ids].drop_duplicates(), on=ids).astype({"sae": str})
    text = {
        (s, int(f)): f"{p} (r {number(r)})"
        for s, f, p, r in mine[["sae", "feature", "worst_part", "worst_r"]].itertuples(index=False)
    }
    keys = zip(feats["sae"].astype(str), feats["feature"].astype(int), strict=True)
    return feats.assign(worst_part=[text.get(k) for k in keys])


def job_label(col: Collection, key: str) -> str:
    """The label of a collected job ("sweep/key") as figures and tables name it."""
    sweep, job_key = key.split("/", 1)
    job = col.jobs[(col.jobs["sweep"] == sweep) & (col.jobs["key"] == job_key)].iloc[0]
    return label(job, col.dims.sweeps, with_bits=True)


def job_cards(
    col: Collection,
    key: str,
    jc: JobContexts,
    n: int,
    named: list[tuple[str | None, int]],
    worst: pd.DataFrame,
) -> list[Card]:
    """The cards of one collected job ("sweep/key"); `worst` as attribution.worst_parts."""
    sweep, job_key = key.split("/", 1)
    feats = col.features[(col.features["sweep"] == sweep) & (col.features["key"] == job_key)]
    feats = with_worst_part(feats, worst)
    name = job_label(col, key)
    cards = []
    for row in select(feats, n, named).to_dict("records"):
        sae, f = str(row["sae"]), int(row["feature"])
        rows = jc.contexts[(jc.contexts["sae"] == sae) & (jc.contexts["feature"] == f)]
        recorded = rows[["fp_act", "q_act"]].to_numpy().ravel()
        scale = float(np.nanmax([row["fp_max"], *recorded, 1e-12]))
        windows = feature_windows(jc, sae, f)
        row["r_interval"] = r_interval(row)
        stats = {k: row[k] for k in STATS if k in row and not pd.isna(row[k])}
        cards.append(
            Card(
                anchor=_anchor(sweep, job_key, sae, f),
                title=f"{sae} · feature {f}",
                job=name,
                why=row["why"].split(", "),
                stats=stats,
                windows=windows,
                scale=scale,
                scatter=scatter_png(rows, scale),
            )
        )
    return cards


@dataclass
class CardInputs:
    """What every job's cards are drawn from (shared with the drawing workers)."""

    col: Collection
    n: int
    named: list[tuple[str | None, int]]
    worst: pd.DataFrame


def card_inputs(
    col: Collection, n: int = 8, named: list[tuple[str | None, int]] | None = None
) -> CardInputs:
    """The cards' inputs: `n` most damaged per job, the named features, attribution's parts."""
    return CardInputs(col, n, named or [], worst_parts(col))


@dataclass
class JobCards:
    """One job's cards, and a note when it has no contexts or no damaged feature to card."""

    cards: list[Card]
    note: str | None = None
    has_contexts: bool = True


def draw_job_cards(key: str) -> JobCards:
    """One collected job's cards (a drawing task)."""
    inputs: CardInputs = shared("cards")
    directory = inputs.col.dirs.get(key)
    jc, reason = load_contexts(directory) if directory else (None, "not read from files")
    if jc is None:
        return JobCards([], f"{key}: no cards: {reason}", has_contexts=False)
    cards = job_cards(inputs.col, key, jc, inputs.n, inputs.named, inputs.worst)
    if inputs.n and not any(w.startswith(MOST_DAMAGED) for c in cards for w in c.why):
        name = job_label(inputs.col, key)
        return JobCards(cards, f"{name}: every active feature survived, none is carded")
    return JobCards(cards)


def submit_cards(executor: Executor) -> list[Future]:
    """One drawing task per collected job, on the pool that shares `cards` (CardInputs)."""
    inputs: CardInputs = shared("cards")
    return [executor.submit(draw_job_cards, key) for key in inputs.col.summaries]


def gather_cards(futures: list[Future]) -> tuple[list[Card], list[str]]:
    """The jobs' cards in job order and their notes (said once when no job has contexts)."""
    jobs: list[JobCards] = [future.result() for future in futures]
    cards = [c for job in jobs for c in job.cards]
    notes = [job.note for job in jobs if job.note]
    missing = [job.note for job in jobs if not job.has_contexts]
    log.info("cards: %d from %d jobs (%d without contexts)", len(cards), len(jobs), len(missing))
    if len(missing) > 1 and len(missing) == len(jobs):
        notes = [f"no cards: none of the {len(jobs)} jobs has recorded contexts ({missing[0]})"]
    return cards, notes


def build_cards(
    col: Collection,
    n: int = 8,
    named: list[tuple[str | None, int]] | None = None,
    workers: int = 1,
) -> tuple[list[Card], list[str]]:
    """Cards of every job with recorded contexts, and one note per job without them."""
    with pool(workers, cards=card_inputs(col, n, named)) as executor:
        return gather_cards(submit_cards(executor))


def _span(t: Token, value: float, rgb: str, scale: float) -> str:
    alpha = 0.0 if pd.isna(value) else MAX_ALPHA * min(max(value / scale, 0.0), 1.0)
    tip = "not recorded" if pd.isna(value) else number(value)
    cls = "tk c" if t.center else "tk"
    return (
        f'<span class="{cls}" style="background:rgba({rgb},{alpha:.3f})" title="{tip}">'
        f"{html.escape(shown_text(t.text))}</span>"
    )


def card_html(c: Card) -> str:
    """One card as an HTML fragment (every token and name escaped)."""
    stats = "".join(
        f'<tr><td class="key">{html.escape(STATS[k])}</td><td>{html.escape(cell(v))}</td></tr>'
        for k, v in c.stats.items()
    )
    color = CLASS_COLORS.get(str(c.stats.get("class")), "#495057")
    img = (
        f'<img class="scatter" alt="FP vs compressed activation" '
        f'src="data:image/png;base64,{base64.b64encode(c.scatter).decode()}">'
        if c.scatter
        else '<p class="note">No recorded activation: the feature never fired here.</p>'
    )
    body = "".join(
        f'<tr><td class="key">{"FP" if w.ranked_by == "fp" else "compressed"} #{w.rank}</td>'
        f"<td>{number(w.fp_act)}</td><td>{number(w.q_act)}</td>"
        f'<td class="tx">{"".join(_span(t, t.fp, FP_RGB, c.scale) for t in w.tokens)}</td>'
        f'<td class="tx">{"".join(_span(t, t.q, Q_RGB, c.scale) for t in w.tokens)}</td></tr>'
        for w in c.windows
    )
    contexts = (
        '<table class="ctx"><thead><tr><th class="key">top by</th><th>FP act</th>'
        '<th>compressed act</th><th class="tx">shaded by FP activation</th>'
        f'<th class="tx">shaded by compressed activation</th></tr></thead><tbody>{body}</tbody>'
        "</table>"
        if c.windows
        else ""
    )
    return (
        f'<div class="card" id="{c.anchor}"><h3>{html.escape(c.title)} '
        f'<span style="color:{color}">{html.escape(str(c.stats.get("class", "")))}</span></h3>'
        f'<p class="why">{html.escape(c.job)} · {html.escape(", ".join(c.why))}</p>'
        f'<div class="cardtop"><table class="stats">{stats}</table>{img}</div>{contexts}</div>'
    )


def _md_cell(text: str) -> str:
    """Token text for a Markdown table cell: HTML-escaped, pipes escaped."""
    return html.escape(text).replace("|", "\\|")


def card_md(c: Card, png: str | None) -> str:
    """One card as Markdown: statistics, scatter link and contexts with the token [[marked]]."""
    stats = "; ".join(f"{STATS[k]} {cell(v)}" for k, v in c.stats.items())
    lines = [f"### {c.title}\n", f"{c.job} · {', '.join(c.why)}. {stats}.\n"]
    if png:
        lines.append(f"![FP vs compressed activation]({png})\n")
    if c.windows:
        lines += ["| top by | FP act | compressed act | context |", "|---|---|---|---|"]
        for w in c.windows:
            text = "".join(
                f"[[{shown_text(t.text)}]]" if t.center else shown_text(t.text) for t in w.tokens
            )
            who = "FP" if w.ranked_by == "fp" else "compressed"
            lines.append(
                f"| {who} #{w.rank} | {number(w.fp_act)} | {number(w.q_act)} | {_md_cell(text)} |"
            )
    return "\n".join(lines) + "\n"


def cards_section(cards: list[Card], notes: list[str], out: Path) -> tuple[str, str]:
    """The report's Feature cards section (HTML, Markdown); scatter PNGs go to out/cards/."""
    intro = (
        "The most damaged active features of each job (blurred or destroyed, lowest r first), "
        "every watched feature and every named one. Contexts are the recorded top positions by "
        "FP activation, then those the compressed model ranks top that FP did not; tokens are "
        "shaded by activation / the feature's maximum (FP in blue, compressed in orange, same "
        "scale). Activations are recorded only at top positions, so other tokens of a window "
        "stay unshaded."
    )
    h = [f"<p>{html.escape(intro)}</p>"] + [card_html(c) for c in cards]
    md = [intro + "\n"]
    for c in cards:
        png = None
        if c.scatter:
            (out / "cards").mkdir(parents=True, exist_ok=True)
            (out / "cards" / f"{c.anchor}.png").write_bytes(c.scatter)
            png = f"cards/{c.anchor}.png"
        md.append(card_md(c, png))
    h += [f'<p class="note">{html.escape(n)}</p>' for n in notes]
    md += [f"> {n}\n" for n in notes]
    return "\n".join(h), "\n".join(md)
