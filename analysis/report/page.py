"""One self-contained report.html (base64 PNGs, tables, config, versions) plus report.md."""

from __future__ import annotations

import base64
import html
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.figures import figure_context, gather_figures, submit_figures
from analysis.figures.base import Figure
from analysis.formatting import cell, yaml_text
from analysis.load.collect import Collection
from analysis.load.configs import flat_config
from analysis.report.cards import CSS as CARD_CSS
from analysis.report.cards import card_inputs, cards_section, gather_cards, submit_cards
from analysis.tables.additivity import ADDITIVITY
from analysis.tables.attribution import ATTRIBUTION
from analysis.tables.fit import FIT_TITLES, fit_names
from analysis.tables.gguf import GGUF_NAMES
from analysis.tables.headline import (
    MATCHED,
    PERCENT,
    Table,
    headline_names,
    key_columns,
    to_markdown,
    write_tables,
)
from analysis.tables.uncertainty import MIN_ACTIVE, OVERLAP_PAIRS, TOKEN_SET
from analysis.workers import pool

log = logging.getLogger("qfeat.analysis")

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;
max-width:1100px;padding:0 1rem;color:#212529;line-height:1.45}
h1{font-size:1.6rem}h2{border-bottom:1px solid #dee2e6;padding-bottom:.2rem;margin-top:2rem}
.scroll{overflow:auto;width:fit-content;max-width:100%;max-height:80vh;margin:.5rem 0;
border:1px solid #dee2e6}
table{border-collapse:collapse;font-size:.8rem}
th,td{border:1px solid #dee2e6;padding:.2rem .45rem;text-align:right;white-space:nowrap}
th{background:#f1f3f5;white-space:normal;min-width:3.5rem;position:sticky;top:0}
td.key,th.key{text-align:left}td:first-child{position:sticky;left:0;background:#fff}
figure{margin:1.2rem 0}figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.9rem;color:#495057}.note{color:#868e96;font-size:.9rem}
pre{background:#f8f9fa;padding:.6rem;font-size:.75rem;overflow-x:auto}
"""


def html_table(frame: pd.DataFrame, names: dict[str, str] | None = None, keys: int = 1) -> str:
    """An escaped HTML table of a frame (NaN as –) in a scrolling container; the first `keys`
    columns are left-aligned identifiers, the rest numbers in the report's one format."""
    names = names or {}
    kind = ["key" if i < keys else "num" for i in range(len(frame.columns))]
    head = "".join(
        f'<th class="{k}">{html.escape(names.get(c, c))}</th>'
        for c, k in zip(frame.columns, kind, strict=True)
    )
    pct = [c in PERCENT for c in frame.columns]
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{k}">{html.escape(cell(v, p))}</td>'
            for v, p, k in zip(row, pct, kind, strict=True)
        )
        + "</tr>"
        for row in frame.itertuples(index=False)
    )
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def configuration(col: Collection) -> str:
    """The sweep's config as YAML (typed values): what varies across jobs, then what is shared."""
    shared: dict[str, Any] = {}
    for k, v in (flat_config(next(iter(col.summaries.values()))) if col.summaries else {}).items():
        if k not in col.dims.varying:
            node = shared
            *parents, leaf = k.split(".")
            for p in parents:
                node = node.setdefault(p, {})
            node[leaf] = list(v) if isinstance(v, tuple) else v
    varying = {
        k: [list(v) if isinstance(v, tuple) else v for v in vals]
        for k, vals in col.dims.values.items()
    }
    dump = {"varying across jobs": varying, "shared by all jobs": shared}
    return yaml_text(dump)


def versions(col: Collection) -> pd.DataFrame:
    """Library versions and git commits found across jobs (several values flag a mixed sweep)."""
    seen: dict[str, set[str]] = {}
    for s in col.summaries.values():
        for lib, v in s.versions.items():
            seen.setdefault(lib, set()).add(str(v))
        seen.setdefault("qfeat git commit", set()).add(str(s.git_commit))
    return pd.DataFrame(
        [{"package": k, "version": ", ".join(sorted(v))} for k, v in sorted(seen.items())]
    )


def page(title: str, body: str) -> str:
    """A self-contained HTML document with the report's style."""
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>'
        f"{html.escape(title)}</title><style>{CSS}{CARD_CSS}</style></head><body>{body}"
        "</body></html>\n"
    )


def _sections(
    col: Collection,
    figures: list[Figure],
    skipped: list[tuple[str, str]],
    tables: list[Table],
    skipped_tables: list[tuple[str, str]],
) -> list[tuple[str, str, str]]:
    """(title, html body, markdown body) of each report section."""
    names = {
        "headline": headline_names(col),
        "matched": MATCHED,
        "gguf": GGUF_NAMES,
        **fit_names(col),
        "token_set": TOKEN_SET,
        "min_active": MIN_ACTIVE,
        "overlap_pairs": OVERLAP_PAIRS,
        "attribution": ATTRIBUTION,
        "additivity": ADDITIVITY,
    }
    titles = {
        "headline": "Headline numbers",
        "matched": "Quantization vs matched pruning",
        "gguf": "GGUF: qfeat's forward and llama.cpp's",
        **FIT_TITLES,
        "token_set": "Enough tokens? Survival on half and all of the tokens",
        "min_active": "How many firing tokens make a feature active?",
        "overlap_pairs": "Damage overlap between jobs",
        "attribution": "Where the damage comes from: each part compressed alone",
        "additivity": "Is damage additive over parts?",
    }
    out = []
    figs_html, figs_md = [], []
    for f in figures:
        data = base64.b64encode(f.png.read_bytes()).decode()
        figs_html.append(
            f'<figure id="{f.name}"><img alt="{html.escape(f.title)}" '
            f'src="data:image/png;base64,{data}"><figcaption><b>{html.escape(f.title)}.</b> '
            f"{html.escape(f.question)} (<code>figures/{f.png.name}</code>)</figcaption></figure>"
        )
        figs_md.append(f"![{f.title}](figures/{f.png.name})\n\n*{f.title}.* {f.question}\n")
    for name, why in skipped:
        figs_html.append(
            f'<p class="note">Figure <code>{name}</code> skipped: {html.escape(why)}</p>'
        )
        figs_md.append(f"> Figure `{name}` skipped: {why}\n")
    for t in tables:
        out.append(
            (
                titles[t.name],
                f"<p>{html.escape(t.caption)} "
                f"(<code>tables/{t.csv.name}</code>)</p>"
                + html_table(t.frame, names[t.name], key_columns(t.frame)),
                f"{t.caption} (`tables/{t.csv.name}`)\n\n" + t.md.read_text(),
            )
        )
    for name, why in skipped_tables:
        figs_html.append(
            f'<p class="note">Table <code>{name}</code> skipped: {html.escape(why)}</p>'
        )
        figs_md.append(f"> Table `{name}` skipped: {why}\n")
    out.append(("Figures", "\n".join(figs_html), "\n".join(figs_md)))
    if len(col.skipped):
        out.append(("Skipped jobs", html_table(col.skipped, keys=3), to_markdown(col.skipped)))
    conf = configuration(col)
    out.append(("Configuration", f"<pre>{html.escape(conf)}</pre>", f"```yaml\n{conf}```\n"))
    ver = versions(col)
    out.append(("Library versions", html_table(ver, keys=2), to_markdown(ver)))
    return out


def write_report(
    col: Collection,
    out: Path,
    n_boot: int = 2000,
    seed: int = 0,
    cards: int = 8,
    named: list[tuple[str | None, int]] | None = None,
    workers: int = 1,
) -> Path:
    """Figures, tables, feature cards, report.html and report.md under out/ (and the cards
    alone in cards.html); returns the report's HTML path. `cards`: most damaged per job;
    `workers`: processes drawing the figures and cards while this one writes the tables."""
    out.mkdir(parents=True, exist_ok=True)
    drawn = {
        "figures": (figure_context(col, n_boot, seed), out / "figures"),
        "cards": card_inputs(col, cards, named),
    }
    with pool(workers, **drawn) as executor:
        figure_tasks, card_tasks = submit_figures(executor), submit_cards(executor)
        tables, skipped_tables = write_tables(col, out / "tables", n_boot, seed)
        figures, skipped = gather_figures(figure_tasks)
        built, notes = gather_cards(card_tasks)
    sections = _sections(col, figures, skipped, tables, skipped_tables)
    if built or notes:
        card_html, card_md = cards_section(built, notes, out)
        sections.insert(-3 if len(col.skipped) else -2, ("Feature cards", card_html, card_md))
        (out / "cards.html").write_text(page("qfeat feature cards", card_html), encoding="utf-8")
    n_jobs, n_skip = len(col.jobs), len(col.skipped)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    sweeps = ", ".join(col.sources)
    intro = (
        f"{n_jobs} jobs ({n_skip} skipped) from {sweeps}; generated {stamp} by "
        "<code>python -m analysis</code> from result files only."
    )
    unsettled = col.jobs[col.jobs["settled"].eq(False)] if "settled" in col.jobs else []
    if len(unsettled):
        intro += (
            f" Warning: survival has not settled with the number of tokens in "
            f"{len(unsettled)} of {n_jobs} jobs (see the table on half and all the tokens)."
        )
    toc = "".join(
        f'<li><a href="#s{i}">{html.escape(t)}</a></li>' for i, (t, _, _) in enumerate(sections)
    )
    body = "".join(
        f'<h2 id="s{i}">{html.escape(t)}</h2>{h}' for i, (t, h, _) in enumerate(sections)
    )
    doc = page(
        f"qfeat report: {sweeps}", f"<h1>qfeat report</h1><p>{intro}</p><ul>{toc}</ul>{body}"
    )
    html_path = out / "report.html"
    html_path.write_text(doc, encoding="utf-8")
    md = [f"# qfeat report\n\n{intro.replace('<code>', '`').replace('</code>', '`')}\n"]
    md += [f"## {t}\n\n{m}" for t, _, m in sections]
    (out / "report.md").write_text("\n".join(md), encoding="utf-8")
    log.info("report: %s (%d figures, %d tables)", html_path, len(figures), len(tables))
    return html_path
