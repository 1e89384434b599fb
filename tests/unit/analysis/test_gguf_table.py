"""The gguf table: one row per GGUF job, from its summary's gguf block, highest bits first; a
job without one (any other method) is not in it, and llama.cpp's columns stay empty when its
forward did not run."""

from pathlib import Path

from synthetic import R, features_frame, write_job

from analysis.load.collect import collect
from analysis.tables.gguf import GGUF_NAMES, gguf_ladder
from analysis.tables.headline import write_tables
from sweep.derive.classes import class_counts
from sweep.derive.overlap import damage_overlap
from sweep.results.summary import Deployed, GGUFRecord


def record(type_name: str, bpw: float, deployed: Deployed | None) -> GGUFRecord:
    return GGUFRecord(
        type=type_name,
        bits_per_weight=bpw,
        matrix_types={"Q4_0": 17, "Q8_0": 1},
        n_fallback=1,
        imatrix=False,
        seconds={"quantize": 0.1},
        deployed=deployed,
    )


def test_one_row_per_gguf_job_with_both_forwards(tmp_path: Path) -> None:
    frame = features_frame(list(R))
    deployed = Deployed(
        **class_counts(frame),
        fp_ppl=10.0,
        q_ppl=12.0,
        delta_ppl=2.0,
        fp_loss=2.3,
        q_loss=2.5,
        kl_mean=0.2,
        runtime={"n_threads": 2},
        logp_gap_mean=0.015,
        logp_gap_max=0.2,
        overlap=damage_overlap(frame, frame),
    )
    sweep = tmp_path / "s"
    write_job(sweep, "a", "gguf", None, gguf=record("Q4_0", 5.3, deployed))
    write_job(sweep, "b", "gguf", None, gguf=record("Q8_0", 8.5, None))
    write_job(sweep, "c", "rtn", 4)
    col = collect([sweep])
    t = gguf_ladder(col)
    assert list(t["type"]) == ["Q8_0", "Q4_0"] and list(t.columns) == list(GGUF_NAMES)
    q4 = t.iloc[1]
    assert q4["logp_gap_mean"] == 0.015 and q4["deployed_delta_ppl"] == 2.0
    assert q4["pct_survived"] == 100 * class_counts(frame)["frac_survived"]
    assert t.iloc[0][["deployed_pct_survived", "logp_gap_mean"]].isna().all()
    tables, _ = write_tables(col, tmp_path / "tables", n_boot=50)
    (md,) = [tb.md for tb in tables if tb.name == "gguf"]
    lines = md.read_text().splitlines()
    assert {line.count("|") for line in lines} == {len(GGUF_NAMES) + 1}
