"""Auditing checkpoints saved by quantization libraries, loaded as transformers loads them:
the audited r equals the in-sweep job of the same method."""

import importlib
import importlib.util
import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig, TorchAoConfig

from conftest import SMALL, compose_config, default_sae_dir
from sweep.base.paths import TINY_ASSETS
from sweep.cli.audit import main
from sweep.cli.export import export
from sweep.compressors import compress_model
from sweep.config.compression import METHODS
from sweep.config.validate import method_config
from sweep.inputs.data import build_token_sets
from sweep.inputs.models import load_hf_model, load_tokenizer
from sweep.job.keys import plan_job
from sweep.job.run import run
from sweep.results.files import FEATURES_FILE

BASE, SAE = str(TINY_ASSETS / "lm"), str(default_sae_dir())
JOB = [*SMALL, "eval.sliding_window_stride=null"]
CALIBRATION = ["calibration_sequences=8"]


def save_bnb(**config):
    """tiny loaded with transformers' BitsAndBytesConfig(**config) and saved."""

    def save(path: Path) -> None:
        model = AutoModelForCausalLM.from_pretrained(
            BASE,
            quantization_config=BitsAndBytesConfig(**config),
            dtype=torch.float32,
            device_map="cpu",
        )
        model.save_pretrained(path)

    return save


def save_torchao(config: Callable[[ModuleType], object]):
    """tiny loaded with transformers' TorchAoConfig(config(torchao.quantization)) and saved."""

    def save(path: Path) -> None:
        model = AutoModelForCausalLM.from_pretrained(
            BASE,
            quantization_config=TorchAoConfig(
                config(importlib.import_module("torchao.quantization"))
            ),
            dtype=torch.float32,
            device_map="cpu",
        )
        model.save_pretrained(path)

    return save


def save_export(method: str, bits: int):
    """tiny compressed by the sweep and saved by `qfeat-export` (save_pretrained)."""

    def save(path: Path) -> None:
        export(path, [*JOB, f"compression={method}", f"bits={bits}"])

    return save


def save_llmc(method: str, bits: int):
    """tiny compressed in memory by llm-compressor as the sweep does, saved compressed."""

    def save(path: Path) -> None:
        cfg = compose_config([*JOB, *CALIBRATION, f"compression={method}", f"bits={bits}"])
        n = cfg.compression.calibration_sequences
        _, calibration = build_token_sets(cfg.data, load_tokenizer(cfg.model), n)
        model = load_hf_model(cfg.model, torch.device("cpu"))
        compress_model(model, method_config(cfg), calibration)
        model.save_pretrained(path, save_compressed=True)

    return save


CASES = {  # method, bits -> how a user would save that checkpoint
    ("nf4", 4): (  # QLoRA's NF4
        "bitsandbytes",
        save_bnb(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32
        ),
    ),
    ("llm_int8", 8): ("bitsandbytes", save_bnb(load_in_8bit=True)),
    ("gptq", 4): ("llmcompressor", save_llmc("gptq", 4)),
    ("w8a8", 8): ("llmcompressor", save_llmc("w8a8", 8)),
    ("ao_int8wo", 8): ("torchao", save_torchao(lambda ao: ao.Int8WeightOnlyConfig())),
    ("ao_w8a8", 8): (
        "torchao",
        save_torchao(lambda ao: ao.Int8DynamicActivationInt8WeightConfig()),
    ),
    ("ao_intxwo", 4): (
        "torchao",
        save_torchao(
            lambda ao: ao.IntxWeightOnlyConfig(
                weight_dtype=torch.int4, granularity=ao.PerGroup(128)
            )
        ),
    ),
    ("ao_fp8wo", 8): ("torchao", save_export("ao_fp8wo", 8)),
}


@pytest.mark.parametrize(("method", "bits"), list(CASES))
def test_audit_of_a_library_checkpoint_equals_the_sweep_job(method, bits, tmp_path: Path):
    _, save = CASES[method, bits]
    ckpt = tmp_path / "ckpt"
    save(ckpt)
    AutoTokenizer.from_pretrained(BASE).save_pretrained(ckpt)
    quant = json.loads((ckpt / "config.json").read_text())["quantization_config"]
    assert quant["quant_method"] in ("bitsandbytes", "compressed-tensors", "torchao")
    fields = [f"base={BASE}", f"candidate={ckpt}", f"sae={SAE}"]
    assert main([*fields, *JOB, f"out_root={tmp_path / 'audit'}"]) == 0
    (features,) = (tmp_path / "audit" / "audit" / "jobs").glob(f"*/{FEATURES_FILE}")
    audited = pd.read_parquet(features)
    calibration = CALIBRATION if METHODS.get(method).calibrated else []
    cfg = compose_config(
        [
            *JOB,
            *calibration,
            f"out_root={tmp_path / 'sweep'}",
            f"compression={method}",
            f"bits={bits}",
        ]
    )
    run(cfg)
    swept = pd.read_parquet(plan_job(cfg).out / FEATURES_FILE)
    assert (audited["active"] == swept["active"]).all() and audited["active"].any()
    diff = (audited["r"] - swept["r"]).abs()[audited["active"]]
    print(f"{method}: max |r_audit - r_sweep| = {diff.max():.2e}")
    assert diff.max() < 1e-6


@pytest.mark.parametrize(
    ("quant_method", "missing", "message"),
    [
        (
            "mystery",
            None,
            "quantized as 'mystery'; qfeat loads plain weights and bitsandbytes, "
            "compressed-tensors, torchao checkpoints",
        ),
        ("torchao", "torchao", "quantized as 'torchao' needs `pip install torchao==0"),
    ],
)
def test_unloadable_checkpoint_is_one_line_before_loading(
    quant_method: str, missing: str | None, message: str, tmp_path: Path, capsys, monkeypatch
) -> None:
    ckpt = tmp_path / "odd"
    ckpt.mkdir()
    config = json.loads((Path(BASE) / "config.json").read_text())
    config["quantization_config"] = {"quant_method": quant_method, "bits": 4}
    (ckpt / "config.json").write_text(json.dumps(config))
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda mod, *a: None if mod == missing else real(mod, *a)
    )
    fields = [f"base={BASE}", f"candidate={ckpt}", f"sae={SAE}"]
    assert main([*fields, *SMALL, f"out_root={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not list(tmp_path.rglob(FEATURES_FILE))
