"""Feature cards, contexts text, fidelity figures and SAE-fit tables on small fake job files."""

import math
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from synthetic import HOOK, R, features_frame, write_job

from analysis.__main__ import main
from analysis.figures.base import Context
from analysis.figures.fidelity import job_means, steer_r_vs_dppl, steer_r_vs_r
from analysis.load.collect import collect
from analysis.load.contexts import decoded_pieces
from analysis.report.cards import build_cards, card_html
from analysis.report.page import page
from analysis.tables.fit import fidelity, sae_fit
from conftest import ROOT
from sweep.results.columns import FIDELITY_COLUMNS
from sweep.results.files import CONTEXTS_FILE, TOKENS_FILE
from sweep.results.summary import FidelitySummary, SaeFit, SaeFitPair

SCRIPT = "<script>alert(1)</script>"
N_SEQ, SEQ_LEN = 3, 24
WATCHED = 3  # survived (r 0.92), so it is carded only because it is watched
NEW_AT = (2, 9)  # where destroyed feature 7 fires only under compression


def token_text(seq: int, pos: int) -> str:
    return SCRIPT if (seq, pos) == (0, 5) else f" w{seq}_{pos}"


def contexts_frame() -> pd.DataFrame:
    """Each active feature f peaks in FP at (0, 5) with 1 + f and at (1, 10 + f) with 0.5; the
    compressed model ranks (1, 10 + f) first, except destroyed feature 7, which it moves to
    NEW_AT, a position FP never ranked."""
    rows = []
    for f in range(8):
        q_peak = (0.0, 3.0) if f == 7 else (0.2 * (1 + f), 0.9)
        tops = {"fp": [((0, 5), 1.0 + f, q_peak[0]), ((1, 10 + f), 0.5, 0.45)]}
        tops["q"] = [(NEW_AT, 0.0, q_peak[1])] if f == 7 else [((1, 10 + f), 0.5, 0.45)]
        for ranked_by, hits in tops.items():
            for rank, ((seq, pos), fp, q) in enumerate(hits):
                rows.append((HOOK, f, ranked_by, rank, seq, pos, fp, q))
    frame = pd.DataFrame(
        rows, columns=["sae", "feature", "ranked_by", "rank", "seq", "pos", "fp_act", "q_act"]
    )
    return frame.astype({"feature": "int64", "rank": "int64", "seq": "int64", "pos": "int64"})


def tokens_frame() -> pd.DataFrame:
    seq, pos = np.divmod(np.arange(N_SEQ * SEQ_LEN), SEQ_LEN)
    return pd.DataFrame(
        {
            "seq": seq.astype("int64"),
            "pos": pos.astype("int64"),
            "token_id": (seq * 100 + pos).astype("int64"),
            "bytes": [token_text(s, p).encode() for s, p in zip(seq, pos, strict=True)],
        }
    )


def new_job(root: Path, key: str, bits: int, delta_ppl: float) -> Path:
    """A job with every issue-13 file and column: contexts, tokens, fidelity and SAE fit."""
    frame = features_frame(R)
    r = frame["r"].to_numpy()
    frame["steer_r"] = np.where(np.isnan(r), np.nan, 1 - (1 - r) / 2)
    frame["ablate_r"] = np.where(np.isnan(r), np.nan, 1 - (1 - r) / 4)
    for kind in ("steer", "ablate"):
        frame[f"{kind}_kl_fp"] = np.where(np.isnan(r), np.nan, 0.2)
        frame[f"{kind}_kl_q"] = frame[f"{kind}_kl_fp"] * 1.5
        frame[f"{kind}_kl_ratio"] = frame[f"{kind}_kl_q"] / frame[f"{kind}_kl_fp"]
    fp = SaeFit(explained_variance=0.9, l0=12.0, ce_loss=3.0, ce_loss_spliced=3.4)
    q = SaeFit(explained_variance=0.7, l0=12.0, ce_loss=3.2, ce_loss_spliced=3.4)
    d = write_job(
        root,
        key,
        bits=bits,
        frame=frame,
        config={"survival.watch": [WATCHED]},
        q_ppl=10.0 + delta_ppl,
        sae_fit={HOOK: SaeFitPair(fp=fp, q=q)},
        fidelity={
            HOOK: FidelitySummary(
                n_features=8,
                n_damaged=3,
                alpha=4.0,
                mean_steer_r_survived=0.97,
                mean_steer_r_damaged=0.6,
                spearman_r_vs_steer_r=1.0,
                mean_ablate_r_survived=None,
                mean_ablate_r_damaged=None,
                spearman_r_vs_ablate_r=None,
            )
        },
    )
    contexts_frame().to_parquet(d / CONTEXTS_FILE, index=False)
    tokens_frame().to_parquet(d / TOKENS_FILE, index=False)
    return d


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    root = tmp_path / "cards_sweep"
    new_job(root, "a" * 16, bits=3, delta_ppl=8.0)
    new_job(root, "b" * 16, bits=4, delta_ppl=0.5)
    return root


@pytest.fixture
def old_sweep(tmp_path: Path) -> Path:
    """Two jobs written before contexts, fidelity columns and the sae_fit/fidelity blocks."""
    root = tmp_path / "old_sweep"
    old = features_frame(R).drop(columns=list(FIDELITY_COLUMNS))
    write_job(root, "c" * 16, bits=3, frame=old)
    write_job(root, "d" * 16, bits=4, frame=old)
    return root


def test_cards_are_the_most_damaged_the_watched_and_the_named(sweep: Path) -> None:
    cards, notes = build_cards(collect([sweep]), n=2, named=[(None, 1), (HOOK, 9)])
    assert notes == []
    per_job = [c for c in cards if c.anchor.startswith("card-cards_sweep-" + "a" * 16)]
    why = {int(c.title.rsplit(" ", 1)[1]): c.why for c in per_job}
    assert why == {
        7: ["most damaged #1"],
        6: ["most damaged #2"],
        WATCHED: ["watched"],
        1: ["named"],
        9: ["named"],  # inactive and never fired: carded without contexts
    }
    by_feature = {int(c.title.rsplit(" ", 1)[1]): c for c in per_job}
    seven = by_feature[7]
    assert [(w.ranked_by, w.seq, w.pos) for w in seven.windows] == [
        ("fp", 0, 5),
        ("fp", 1, 17),
        ("q", *NEW_AT),
    ]
    assert seven.stats["steer_r"] == pytest.approx(1 - 0.9 / 2)
    assert seven.stats["r_interval"] == "0.0800–0.120"  # synthetic: r ± 0.02, not uncertain
    assert seven.scale == 8.0  # the largest recorded activation (FP 1 + 7)
    centre = [t for t in seven.windows[0].tokens if t.center]
    assert [(t.text, t.fp, t.q) for t in centre] == [(SCRIPT, 8.0, 0.0)]
    assert len(seven.windows[0].tokens) == 12  # pos 5: 5 tokens before, 6 after
    assert by_feature[9].windows == [] and by_feature[9].scatter is None


def test_only_blurred_or_destroyed_features_are_carded_as_most_damaged(sweep: Path) -> None:
    cards, _ = build_cards(collect([sweep]), n=8)
    per_job = [c for c in cards if c.anchor.startswith("card-cards_sweep-" + "a" * 16)]
    why = {int(c.title.rsplit(" ", 1)[1]): c.why for c in per_job}
    # r 0.1, 0.6, 0.8 are damaged; survivor 0.91 is not carded though 8 were asked for
    assert why == {
        7: ["most damaged #1"],
        6: ["most damaged #2"],
        5: ["most damaged #3"],
        WATCHED: ["watched"],
    }


def test_a_job_whose_features_all_survived_gets_a_note_instead(tmp_path: Path) -> None:
    root = tmp_path / "survivors"
    d = write_job(root, "e" * 16, bits=8, frame=features_frame([0.99, 0.95, np.nan]))
    contexts_frame().to_parquet(d / CONTEXTS_FILE, index=False)
    tokens_frame().to_parquet(d / TOKENS_FILE, index=False)
    cards, notes = build_cards(collect([root]), n=8)
    assert cards == []
    assert len(notes) == 1 and notes[0].endswith("every active feature survived, none is carded")


def test_cards_drawn_by_two_workers_equal_those_drawn_in_place(sweep: Path) -> None:
    col = collect([sweep])
    named = [(None, 1)]
    in_place = build_cards(col, n=2, named=named, workers=1)
    forked = build_cards(col, n=2, named=named, workers=2)
    assert repr(forked) == repr(in_place)  # repr: NaN activations compare equal there


class Tags(HTMLParser):
    """Every start tag, and the text of each token span."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.spans: list[tuple[str, str]] = []
        self._style: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        a = dict(attrs)
        self._style = a.get("style") if tag == "span" and "tk" in (a.get("class") or "") else None

    def handle_data(self, data: str) -> None:
        if self._style is not None:
            self.spans.append((data, self._style))
            self._style = None


def test_card_html_escapes_tokens_and_shades_by_activation(sweep: Path) -> None:
    cards, _ = build_cards(collect([sweep]), n=1)
    seven = next(c for c in cards if c.title.endswith("feature 7"))
    fragment = card_html(seven)
    assert SCRIPT not in fragment and "&lt;script&gt;" in fragment
    parsed = Tags()
    parsed.feed(fragment)
    assert "script" not in parsed.tags
    shades = [style for text, style in parsed.spans if text == SCRIPT]
    assert shades == ["background:rgba(25,113,194,0.700)", "background:rgba(232,89,12,0.000)"]
    new = [style for text, style in parsed.spans if text == " w2_9"]  # 0.7 × 3 / 8
    assert new == ["background:rgba(25,113,194,0.000)", "background:rgba(232,89,12,0.262)"]


def test_report_has_cards_fidelity_figures_and_fit_tables(sweep: Path) -> None:
    assert main([str(sweep), "--cards", "2", "--feature", "1", "--n-boot", "100", "-q"]) == 0
    report = sweep / "report"
    text = (report / "report.html").read_text()
    assert text.count('class="card"') == 2 * 4  # 2 worst + watched + named, per job
    assert SCRIPT not in text and "Feature cards" in text
    for name in ("steer_r_vs_r", "steer_r_vs_dppl", "ablate_r_vs_r", "ablate_r_vs_dppl"):
        assert (report / "figures" / f"{name}.png").stat().st_size > 1000
        assert f'id="{name}"' in text
    md = (report / "report.md").read_text()
    assert "[[&lt;script&gt;alert(1)&lt;/script&gt;]]" in md
    assert len(list((report / "cards").glob("*.png"))) == 8
    assert (report / "cards.html").read_text().count('class="card"') == 8
    fit = pd.read_csv(report / "tables" / "sae_fit.csv")
    assert fit["q_explained_variance"].tolist() == [0.7, 0.7]
    assert fit["ce_spliced_increase_q"].tolist() == pytest.approx([0.2, 0.2])
    assert pd.read_csv(report / "tables" / "fidelity.csv")["alpha"].tolist() == [4.0, 4.0]


def test_fidelity_per_dppl_is_the_mean_per_job(sweep: Path, tmp_path: Path) -> None:
    col = collect([sweep])
    ctx = Context(col, pd.DataFrame(), n_sweeps=1, thresholds=(0.9, 0.5))
    for draw in (steer_r_vs_r, steer_r_vs_dppl):
        assert draw(ctx, tmp_path).png.stat().st_size > 1000
    means = job_means(ctx, "steer").set_index(["key", "group"])
    # steer_r = 1 − (1 − r)/2: damaged r 0.8, 0.6, 0.1; survived r 0.99, 0.95, 0.93, 0.92, 0.91
    assert means.loc[("a" * 16, "damaged"), "steer_r"] == pytest.approx((0.9 + 0.8 + 0.55) / 3)
    assert means.loc[("b" * 16, "survived"), "steer_r"] == pytest.approx(0.97)
    assert means["delta_ppl"].tolist() == [8.0, 8.0, 0.5, 0.5]
    assert sae_fit(col)["fp_l0"].tolist() == [12.0, 12.0]
    assert fidelity(col)["mean_steer_r_damaged"].tolist() == [0.6, 0.6]


def test_older_jobs_skip_cards_figures_and_tables_with_one_note(old_sweep: Path) -> None:
    assert main([str(old_sweep), "--n-boot", "100", "-q"]) == 0
    text = (old_sweep / "report" / "report.html").read_text()
    for name in ("steer_r_vs_r", "steer_r_vs_dppl", "ablate_r_vs_r", "ablate_r_vs_dppl"):
        assert f"<code>{name}</code> skipped" in text
    for name in ("sae_fit", "fidelity"):
        assert f"Table <code>{name}</code> skipped" in text
    assert text.count("no cards: none of the 2 jobs has recorded contexts") == 1
    assert 'class="card"' not in text


def test_cli_prints_contexts_with_the_token_marked(
    sweep: Path, old_sweep: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["features", str(sweep), "--bits", "3", "--feature", "7", "--contexts"]) == 0
    out = capsys.readouterr().out
    assert f"{HOOK} feature 7: destroyed, r 0.100" in out
    assert f"#0  fp   8.00  q      0 |  w0_0 w0_1 w0_2 w0_3 w0_4[[{SCRIPT}]] w0_6" in out
    assert "top by compressed activation, not in FP's top:" in out
    assert "#0  fp      0  q   3.00 |  w2_3" in out and "[[ w2_9]]" in out
    assert main(["features", str(sweep), "--feature", "blocks.x:seven"]) == 2
    assert "expected an index or HOOK:INDEX" in capsys.readouterr().err
    assert main(["features", str(old_sweep), "--worst", "1", "--contexts"]) == 0
    assert "no contexts: no contexts.parquet / tokens.parquet" in capsys.readouterr().out


@pytest.mark.skipif(
    shutil.which("chromium") is None,
    reason="chromium not installed (apt-get install -y chromium) - card rendering not checked",
)
def test_card_renders_in_headless_chromium(sweep: Path, tmp_path: Path) -> None:
    cards, _ = build_cards(collect([sweep]), n=1)
    seven = next(c for c in cards if c.title.endswith("feature 7"))
    html_path = tmp_path / "card.html"
    html_path.write_text(page("card", card_html(seven)))
    shot = tmp_path / "card.png"
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "render_report.sh"), str(html_path), str(shot), "1100,600"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    pixels = shot.read_bytes()
    assert pixels[:8] == b"\x89PNG\r\n\x1a\n" and len(pixels) > 20_000  # text + shading drawn


def test_a_character_split_over_tokens_decodes_whole() -> None:
    """Byte-level BPE splits 'é' (C3 A9) over two tokens: each alone decodes to U+FFFD; the
    window decodes as a whole, the two tokens become one piece shaded by the larger value."""
    raw = [b" if", b" they", b" \xc3", b"\xa9", b"name", b"\xe2\x86", b"\x92"]
    acts = [(math.nan, math.nan)] * 2 + [(1.0, 0.5), (3.0, 0.25)] + [(math.nan, math.nan)] * 3
    centers = [False, False, False, True, False, False, False]
    pieces = decoded_pieces(raw, acts, centers)
    assert [p.text for p in pieces] == [" if", " they", " é", "name", "→"]
    assert "\ufffd" not in "".join(p.text for p in pieces)
    (accent,) = [p for p in pieces if p.text == " é"]
    assert (accent.fp, accent.q, accent.center) == (3.0, 0.5, True)


def test_recorded_token_bytes_decode_to_the_tokenizer_text() -> None:
    """The job's per-token bytes (sweep.inputs.token_bytes), joined, decode to exactly what
    the tokenizer decodes the whole sequence to (its own oracle)."""
    from transformers import AutoTokenizer

    from sweep.base.paths import TINY_ASSETS
    from sweep.inputs.token_bytes import token_bytes

    tokenizer = AutoTokenizer.from_pretrained(TINY_ASSETS / "lm")
    text = "if they are ‘name’ — héllo wörld → 😀 \u2581x"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    raw = token_bytes(tokenizer, ids)
    assert b"".join(raw[i] for i in ids).decode() == tokenizer.decode(ids) == text
    assert any(tokenizer.decode([i]) == "\ufffd" for i in ids)  # alone, pieces are broken
    nan = (math.nan, math.nan)
    pieces = decoded_pieces([raw[i] for i in ids], [nan] * len(ids), [False] * len(ids))
    assert "".join(p.text for p in pieces) == text
