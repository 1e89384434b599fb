"""python -m analysis options that render whole reports (three here: seconds each)."""

from pathlib import Path

import pandas as pd
from synthetic import two_sae_sweep

from analysis.__main__ import main


def test_report_out_and_seed_options(tmp_path: Path, capsys) -> None:
    """--out puts the report there; --seed changes the bootstrap CIs and nothing else; the same
    seed reproduces them."""
    sweep = two_sae_sweep(tmp_path / "s")
    runs = {}
    for name, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        args = [str(sweep), "--out", str(tmp_path / name), "--seed", seed, "--n-boot", "200"]
        assert main([*args, "--cards", "0", "-q"]) == 0
        assert capsys.readouterr().out.strip() == str(tmp_path / name / "report.html")
        runs[name] = pd.read_csv(tmp_path / name / "tables" / "headline.csv")
    assert not (sweep / "report").exists()
    pd.testing.assert_frame_equal(runs["a"], runs["b"])
    ci = [c for c in runs["a"].columns if "ci95" in c]
    assert ci and not runs["a"][ci].equals(runs["c"][ci])
    rest = [c for c in runs["a"].columns if c not in ci]
    pd.testing.assert_frame_equal(runs["a"][rest], runs["c"][rest])
