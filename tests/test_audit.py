"""Auditing saved checkpoints: same numbers as the sweep, identity, gating, mismatch refusal."""

from pathlib import Path

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf
from transformers import AutoTokenizer, GPTNeoXConfig, GPTNeoXForCausalLM

from conftest import SMALL, compose_config
from sweep.audit import main
from sweep.compressors import compress_model
from sweep.constants import FEATURES_FILE, TINY_ASSETS
from sweep.job import run
from sweep.models import load_hf_model
from sweep.record import job_dir, job_key
from sweep.schema import CompressionConfig

REFERENCE, SAE = str(TINY_ASSETS / "lm"), str(TINY_ASSETS / "sae")


@pytest.fixture(scope="module")
def candidates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """RTN-4 and RTN-2 copies of tiny saved with save_pretrained, as a user would ship them."""
    out = {}
    tokenizer = AutoTokenizer.from_pretrained(REFERENCE)
    for bits in (4, 2):
        model = load_hf_model(
            OmegaConf.create({"name": "tiny", "path": None, "dtype": "float32"}),
            torch.device("cpu"),
        )
        compress_model(model, OmegaConf.structured(CompressionConfig(name="rtn")), bits)
        path = tmp_path_factory.mktemp(f"rtn{bits}")
        model.save_pretrained(path)
        tokenizer.save_pretrained(path)
        out[f"rtn{bits}"] = path
    return out


def audit(tmp_path: Path, candidate, *extra: str) -> int:
    fields = [f"reference={REFERENCE}", f"candidate={candidate}", f"sae={SAE}"]
    return main([*fields, *SMALL, f"out_root={tmp_path}", *extra])


def audit_frame(tmp_path: Path) -> pd.DataFrame:
    (features,) = (tmp_path / "audit" / "jobs").glob(f"*/{FEATURES_FILE}")
    return pd.read_parquet(features)


def test_audit_equals_the_in_sweep_rtn_job(candidates, tmp_path: Path) -> None:
    assert audit(tmp_path, candidates["rtn4"]) == 0
    cfg = compose_config([*SMALL, f"out_root={tmp_path / 'sweep'}", "bits=4"])
    run(cfg)
    sweep_frame = pd.read_parquet(job_dir(cfg, job_key(cfg)) / FEATURES_FILE)
    audited = audit_frame(tmp_path)
    assert (audited["active"] == sweep_frame["active"]).all()
    diff = (audited["r"] - sweep_frame["r"]).abs()
    assert diff[audited["active"]].max() < 1e-6


def test_reference_against_itself_keeps_every_feature(tmp_path: Path, capsys) -> None:
    assert audit(tmp_path, REFERENCE, "--fail-under", "1.0") == 0
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
    assert main([f"reference={REFERENCE}", f"candidate={REFERENCE}", "sae=nonsense"]) == 2
    assert "neither a directory nor 'release:sae_id'" in capsys.readouterr().err
