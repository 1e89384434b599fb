"""A job's recorded top contexts (contexts.parquet + tokens.parquet) as token windows.

The job keeps, per feature, its top-k positions by FP and by compressed activation with both
activations there, and writes the measured tokens beside them. Activations are known only at
those recorded positions: the other tokens of a window are shown without a value.
"""

from __future__ import annotations

import codecs
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analysis.formatting import number
from analysis.load.collect import AnalysisError
from sweep.results.files import CONTEXTS_FILE, TOKENS_FILE

CONTEXT_COLUMNS = ("sae", "feature", "ranked_by", "rank", "seq", "pos", "fp_act", "q_act")
TOKEN_COLUMNS = ("seq", "pos", "token_id", "bytes")
WINDOW = 6  # tokens shown on each side of the activating one
SHOWN = 8  # contexts shown per ranking


@dataclass
class Token:
    """One piece of a window: the characters of one token, or of consecutive tokens that share
    a character (byte-level BPE splits some characters); fp / q are the largest recorded
    activation among them (NaN where none was recorded); center when the activating token is
    one of them."""

    text: str
    fp: float
    q: float
    center: bool


@dataclass
class Window:
    """One top context: which ranking put it there, where, and its tokens."""

    ranked_by: str
    rank: int
    seq: int
    pos: int
    fp_act: float
    q_act: float
    tokens: list[Token]


@dataclass
class JobContexts:
    """One job's contexts table and its tokens' bytes by (seq, pos)."""

    contexts: pd.DataFrame
    raw: dict[tuple[int, int], bytes]


def parse_named(specs: list[str]) -> list[tuple[str | None, int]]:
    """`--feature` values: `454` (that index in every SAE) or `blocks.2.hook_resid_post:454`."""
    out = []
    for spec in specs:
        hook, _, idx = spec.rpartition(":")
        if not idx.isdigit():
            raise AnalysisError(f"--feature {spec!r}: expected an index or HOOK:INDEX")
        out.append((hook or None, int(idx)))
    return out


def load_contexts(directory: Path) -> tuple[JobContexts | None, str | None]:
    """A job directory's contexts, or None and the one-line reason they cannot be shown."""
    paths = {name: directory / name for name in (CONTEXTS_FILE, TOKENS_FILE)}
    absent = [n for n, p in paths.items() if not p.is_file()]
    if absent:
        return None, f"no {' / '.join(absent)} (job written before contexts were recorded)"
    try:
        ctx = pd.read_parquet(paths[CONTEXTS_FILE])
        tok = pd.read_parquet(paths[TOKENS_FILE])
    except Exception as err:  # pyarrow raises several types for corrupt files
        return None, f"contexts unreadable: {type(err).__name__}: {err}"
    for name, frame, cols in (
        (CONTEXTS_FILE, ctx, CONTEXT_COLUMNS),
        (TOKENS_FILE, tok, TOKEN_COLUMNS),
    ):
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            return None, f"{name} lacks columns {missing}"
    raw = dict(zip(zip(tok["seq"], tok["pos"], strict=True), tok["bytes"], strict=True))
    return JobContexts(ctx.astype({"sae": str}), raw), None


def _nanmax(values: list[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return max(kept) if kept else math.nan


def decoded_pieces(
    raw: list[bytes], acts: list[tuple[float, float]], centers: list[bool]
) -> list[Token]:
    """A window's tokens decoded as a whole (incremental UTF-8): a piece ends at a token after
    which no character is left incomplete, so the tokens sharing a character are one piece.
    Bytes of a character cut off at the window's edge decode to U+FFFD, as anywhere else."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    out: list[Token] = []
    text, pending = "", []

    def flush() -> None:
        fp = _nanmax([acts[i][0] for i in pending])
        q = _nanmax([acts[i][1] for i in pending])
        out.append(Token(text, fp, q, any(centers[i] for i in pending)))

    for j, chunk in enumerate(raw):
        pending.append(j)
        text += decoder.decode(chunk)
        if text and not decoder.getstate()[0]:  # nothing left half-decoded
            flush()
            text, pending = "", []
    if pending:
        text += decoder.decode(b"", final=True)
        flush()
    return out


def feature_windows(
    jc: JobContexts, sae: str, feature: int, shown: int = SHOWN, width: int = WINDOW
) -> list[Window]:
    """The top `shown` contexts by FP activation, then those of the top `shown` by compressed
    activation that FP did not already rank (what the feature fires on only after compression)."""
    rows = jc.contexts[(jc.contexts["sae"] == sae) & (jc.contexts["feature"] == feature)]
    known = {
        (s, p): (f, q)
        for s, p, f, q in zip(rows["seq"], rows["pos"], rows["fp_act"], rows["q_act"], strict=True)
    }
    out: list[Window] = []
    seen: set[tuple[int, int]] = set()
    for ranked_by in ("fp", "q"):
        part = rows[(rows["ranked_by"] == ranked_by) & (rows["rank"] < shown)].sort_values("rank")
        for r in part.itertuples(index=False):
            at = (int(r.seq), int(r.pos))
            if at in seen:
                continue
            seen.add(at)
            positions = [p for p in range(at[1] - width, at[1] + width + 1) if (at[0], p) in jc.raw]
            tokens = decoded_pieces(
                [jc.raw[at[0], p] for p in positions],
                [known.get((at[0], p), (math.nan, math.nan)) for p in positions],
                [p == at[1] for p in positions],
            )
            out.append(Window(ranked_by, int(r.rank), *at, float(r.fp_act), float(r.q_act), tokens))
    return out


def shown_text(text: str) -> str:
    """A token's text with line breaks and tabs made visible (one context stays one line)."""
    return text.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")


def context_line(w: Window) -> str:
    """`fp 5.2  q 0.31 | … the [[cat]] sat …`: the activating token marked, both activations."""
    text = "".join(
        f"[[{shown_text(t.text)}]]" if t.center else shown_text(t.text) for t in w.tokens
    )
    return f"fp {number(w.fp_act):>6}  q {number(w.q_act):>6} | {text}"


def contexts_text(jc: JobContexts, sae: str, feature: int, shown: int = SHOWN) -> str:
    """A feature's top contexts as plain text, FP ranking first, then the compressed one."""
    windows = feature_windows(jc, sae, feature, shown)
    if not windows:
        return "  (no recorded context: the feature never fired on the measured tokens)"
    titles = {"fp": "top by FP activation", "q": "top by compressed activation, not in FP's top"}
    lines = []
    for ranked_by in ("fp", "q"):
        part = [w for w in windows if w.ranked_by == ranked_by]
        if part:
            lines.append(f"  {titles[ranked_by]}:")
            lines += [f"    #{w.rank:<2} {context_line(w)}" for w in part]
    return "\n".join(lines)
