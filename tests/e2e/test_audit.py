"""Auditing saved checkpoints: same numbers as the sweep, identity, gating, mismatch refusal."""

import json
import logging
import shutil
from pathlib import Path

import pandas as pd
import pytest
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

from conftest import SMALL, compose_config, default_sae_dir
from sweep.base.paths import TINY_ASSETS
from sweep.cli.audit import main
from sweep.cli.export import main as export_main
from sweep.job.keys import plan_job
from sweep.job.run import run
from sweep.results.files import FEATURES_FILE

BASE, SAE = str(TINY_ASSETS / "lm"), str(default_sae_dir())


@pytest.fixture(scope="module")
def candidates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """RTN-4 and RTN-2 copies of tiny written by `qfeat-export`, as the README says."""
    out = {}
    for bits in (4, 2):
        path = tmp_path_factory.mktemp(f"rtn{bits}")
        args = [str(path), "compression=rtn", f"bits={bits}", "runtime.device=cpu"]
        assert export_main(args) == 0
        out[f"rtn{bits}"] = path
    return out


def audit(tmp_path: Path, candidate, *extra: str) -> int:
    fields = [f"base={BASE}", f"candidate={candidate}", f"sae={SAE}"]
    return main([*fields, *SMALL, f"out_root={tmp_path}", *extra])


def audit_frame(tmp_path: Path) -> pd.DataFrame:
    (features,) = (tmp_path / "audit" / "jobs").glob(f"*/{FEATURES_FILE}")
    return pd.read_parquet(features)


def test_audit_equals_the_in_sweep_rtn_job(candidates, tmp_path: Path) -> None:
    assert audit(tmp_path, candidates["rtn4"]) == 0
    cfg = compose_config([*SMALL, f"out_root={tmp_path / 'sweep'}", "bits=4"])
    run(cfg)
    sweep_frame = pd.read_parquet(plan_job(cfg).out / FEATURES_FILE)
    audited = audit_frame(tmp_path)
    assert (audited["active"] == sweep_frame["active"]).all()
    diff = (audited["r"] - sweep_frame["r"]).abs()
    assert diff[audited["active"]].max() < 1e-6


def test_base_against_itself_keeps_every_feature(tmp_path: Path, capsys) -> None:
    assert audit(tmp_path, BASE, "--fail-under", "1.0") == 0
    frame = audit_frame(tmp_path)
    assert (frame.loc[frame["active"], "r"] > 1 - 1e-9).all()
    assert "100.0% survived" in capsys.readouterr().out


def test_fail_under_gates_a_damaging_candidate(candidates, tmp_path: Path, capsys) -> None:
    assert audit(tmp_path, candidates["rtn2"], "--fail-under", "0.9") == 1
    out = capsys.readouterr().out
    assert "FAIL:" in out and "most damaged features" in out


def test_mismatched_checkpoint_is_refused(tmp_path: Path, capsys) -> None:
    config = GPTNeoXConfig(
        vocab_size=100,
        hidden_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=512,
    )
    GPTNeoXForCausalLM(config).save_pretrained(tmp_path / "other")
    assert audit(tmp_path, tmp_path / "other") == 2
    assert "differ in vocab_size: 2048 vs 100" in capsys.readouterr().err


def test_sae_spec_must_be_a_directory_or_release_id(capsys) -> None:
    assert main([f"base={BASE}", f"candidate={BASE}", "sae=nonsense"]) == 2
    err = capsys.readouterr().err
    assert "'nonsense' is neither a directory, 'release:sae_id' nor one of tiny-relu, " in err


@pytest.mark.parametrize("bound", ["2.0", "-1"])
def test_fail_under_outside_unit_interval_is_refused(bound: str, tmp_path: Path, capsys) -> None:
    assert audit(tmp_path, BASE, "--fail-under", bound) == 2
    assert f"--fail-under {float(bound)} is outside [0, 1]" in capsys.readouterr().err
    assert not (tmp_path / "reference_cache").exists()  # refused before any work


def test_missing_candidate_is_refused_before_any_work(tmp_path: Path, capsys) -> None:
    assert audit(tmp_path, tmp_path / "no-such-checkpoint") == 2
    assert "is not a directory" in capsys.readouterr().err
    assert not (tmp_path / "reference_cache").exists()


def test_export_refuses_bad_input_in_one_line(tmp_path: Path, capsys) -> None:
    assert export_main([str(tmp_path / "out"), "bits=1"]) == 2
    assert export_main([str(tmp_path / "out"), "compression=zip"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "supports bits in 2..16; got bits=1" in err[0] and "zip" in err[1]


def test_the_old_reference_field_names_its_new_name(capsys) -> None:
    assert main([f"reference={BASE}", f"candidate={BASE}", f"sae={SAE}"]) == 2
    assert "reference= is now base=" in capsys.readouterr().err


def test_watch_gates_on_the_watched_features_alone(candidates, tmp_path: Path, capsys) -> None:
    assert audit(tmp_path, candidates["rtn2"]) == 0
    frame = audit_frame(tmp_path)
    active = frame[frame["active"]]
    kept = active.loc[active["class"] == "survived", "feature"].head(2).tolist()
    lost = active.loc[active["class"] == "destroyed", "feature"].head(1).tolist()
    assert len(kept) == 2 and len(lost) == 1  # 2-bit RTN on tiny: some of each
    watch = ",".join(map(str, kept))
    assert audit(tmp_path / "a", candidates["rtn2"], "--watch", watch, "--fail-under", "1") == 0
    assert "2 watched features:" in capsys.readouterr().out
    watch = ",".join(map(str, kept + lost))
    assert audit(tmp_path / "b", candidates["rtn2"], "--watch", watch, "--fail-under", "0.9") == 1
    assert "FAIL: 66.7% of watched features survived" in capsys.readouterr().out


def test_watching_an_inactive_feature_is_refused(tmp_path: Path, capsys) -> None:
    assert audit(tmp_path, BASE) == 0
    frame = audit_frame(tmp_path)
    silent = int(frame.loc[~frame["active"], "feature"].iloc[0])
    assert audit(tmp_path / "x", BASE, "--watch", str(silent), "--fail-under", "0.5") == 2
    assert f"watched features [{silent}] are not active" in capsys.readouterr().err


def test_candidate_without_config_json_is_refused_before_any_work(tmp_path: Path, capsys):
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "model.safetensors").write_bytes(b"")
    assert audit(tmp_path, tmp_path / "ckpt") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has no config.json: not an HF checkpoint" in err[0]
    assert not (tmp_path / "reference_cache").exists()


@pytest.mark.parametrize(
    ("watch", "message"),
    [("3,x", "is not a comma-separated list of ids"), ("-1", "give one or more feature ids")],
)
def test_bad_watch_value_is_a_usage_error(watch: str, message: str, tmp_path: Path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        audit(tmp_path, BASE, f"--watch={watch}")
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "reference_cache").exists()


def test_export_to_an_unwritable_directory_is_one_line(tmp_path: Path, capsys) -> None:
    """An output path below a regular file cannot be created (root ignores permission bits,
    so this is the unwritable directory every user, root included, hits)."""
    (tmp_path / "file").write_text("")
    args = [str(tmp_path / "file" / "out"), "compression=rtn", "bits=4", "runtime.device=cpu"]
    assert export_main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot write results to" in err[0] and "Not a directory" in err[0]


def copy_without(src: Path, dest: Path, *names: str) -> Path:
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns(*names))
    return dest


def test_candidate_without_tokenizer_uses_the_bases(candidates, tmp_path: Path, caplog) -> None:
    """A checkpoint saved without tokenizer files is measured on the base's tokens: the same
    features as the same weights with their tokenizer, and one warning saying so."""
    bare = copy_without(candidates["rtn4"], tmp_path / "bare", "tokenizer*", "special_tokens*")
    assert not list(bare.glob("tokenizer*"))
    with caplog.at_level(logging.WARNING):
        assert audit(tmp_path / "bare_out", bare) == 0
    assert any("no tokenizer files" in r.getMessage() for r in caplog.records)
    assert audit(tmp_path / "full_out", candidates["rtn4"]) == 0
    pd.testing.assert_frame_equal(
        audit_frame(tmp_path / "bare_out"), audit_frame(tmp_path / "full_out")
    )


def test_candidate_with_another_tokenizer_is_refused(candidates, tmp_path: Path, capsys) -> None:
    """Same architecture and sizes, but two tokens of the vocabulary swapped: refused in one
    line (its ids would mean other text)."""
    other = copy_without(candidates["rtn4"], tmp_path / "other")
    spec = json.loads((other / "tokenizer.json").read_text())
    vocab = spec["model"]["vocab"]
    a, b = sorted(vocab, key=vocab.get)[100:102]
    vocab[a], vocab[b] = vocab[b], vocab[a]
    (other / "tokenizer.json").write_text(json.dumps(spec))
    assert audit(tmp_path, other) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith("error: base and candidate tokenizers have different vocabularies")


def test_worst_lists_that_many_damaged_features(candidates, tmp_path: Path, capsys) -> None:
    assert audit(tmp_path, candidates["rtn2"], "--worst", "3") == 0
    out = capsys.readouterr().out
    table = out.split("3 most damaged features:\n", 1)[1].split("\nresults:", 1)[0]
    rows = table.strip().splitlines()[1:]  # below the header
    listed = [float(row.split()[2]) for row in rows]  # sae, feature, r, ...
    frame = audit_frame(tmp_path)
    expected = frame[frame["active"]].sort_values("r")["r"].head(3)
    assert listed == pytest.approx(list(expected), abs=1e-4)
    assert audit(tmp_path, candidates["rtn2"], "--worst", "-1") == 2
    assert "--worst -1" in capsys.readouterr().err


def test_audit_measures_on_the_data_it_is_given(tmp_path: Path) -> None:
    """data=local with a text file: the audit's tokens come from that file (its content digest
    is in the result's key inputs) and the base against itself keeps every feature."""
    text = tmp_path / "text.txt"
    text.write_text((TINY_ASSETS / "heldout.txt").read_text(encoding="utf-8")[:60000])
    assert audit(tmp_path, BASE, "data=local", f"data.path={text}", "--fail-under", "1.0") == 0
    (summary,) = (tmp_path / "audit" / "jobs").glob("*/summary.json")
    record = json.loads(summary.read_text())
    assert record["config"]["data"]["name"] == "local"
    assert record["config"]["data"]["path"] == str(text)
