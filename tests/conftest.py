"""Shared fixtures: seeding, composing the shipped Hydra configs, one tiny model per session;
tests under tests/e2e are marked `e2e` (run apart: `pytest -m "not e2e and not slurm"` is the
unit tier)."""

import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import DictConfig

from sweep.config.compose import compose_config
from sweep.config.compression import METHODS, CompressionConfig
from sweep.config.validate import method_config

ROOT = Path(__file__).resolve().parent.parent
E2E = Path(__file__).resolve().parent / "e2e"
GPU = Path(__file__).resolve().parent / "gpu"
# A bound on every subprocess a test starts (a hung child fails its test, never the suite).
SUBPROCESS_TIMEOUT_S = 600
# Shrinks any shipped config to a seconds-long CPU job.
SMALL = [
    "data.n_sequences=16",
    "data.seq_len=64",
    "eval.sliding_window_stride=32",
    "runtime.device=cpu",
    "runtime.batch_size=8",
    "runtime.progress=false",
    "survival.min_active_tokens=3",
    "wandb.mode=disabled",
    "fidelity.max_features=2",
]
# The smallest job whose features are still measured: no fidelity, contexts or SAE fit.
FAST = [
    "data.n_sequences=8",
    "data.seq_len=64",
    "runtime.device=cpu",
    "runtime.progress=false",
    "survival.min_active_tokens=3",
    "wandb.mode=disabled",
    "fidelity.max_features=0",
    "eval.sae_fit_sequences=0",
    "eval.contexts_k=0",
]


@pytest.fixture(autouse=True)
def _seed() -> None:
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/e2e is an end-to-end run, marked `e2e`; under tests/gpu, `gpu`."""
    for item in items:
        parents = Path(str(item.fspath)).parents
        if E2E in parents:
            item.add_marker(pytest.mark.e2e)
        if GPU in parents:
            item.add_marker(pytest.mark.gpu)


def launch(*args: str, timeout: int = SUBPROCESS_TIMEOUT_S) -> subprocess.CompletedProcess:
    """`python launch.py ARGS` from the repository root, as a user runs it; must succeed."""
    cmd = [sys.executable, "launch.py", *args]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def method(*overrides: str) -> CompressionConfig:
    """A compression method's typed config, composed from the shipped conf/ as a job would."""
    return method_config(compose_config(list(overrides)))


def bits_of(name: str) -> int:
    """4 where the method takes it (or has no bits option), else its first bit-width."""
    choices = METHODS.get(name).bit_choices
    return 4 if choices is None or 4 in choices else choices[0]


def default_sae_dir() -> Path:
    """The SAE-Lens directory of the shipped default SAE (conf/config.yaml's `sae`)."""
    from sweep.config.locations import local_sae_path

    sae = compose_config([]).sae
    return local_sae_path(sae, sae.layer)


@pytest.fixture
def small_cfg(tmp_path: Path) -> DictConfig:
    """The default job, shrunk, writing under tmp_path."""
    return compose_config([*SMALL, f"out_root={tmp_path}"])


@pytest.fixture(scope="session")
def tiny():
    """The embedded model once: HF model, its hooked wrapper, TL oracle, tokenizer, SAE, tokens."""
    from types import SimpleNamespace

    from sweep.config.locations import model_path
    from sweep.inputs.data import build_token_sets
    from sweep.inputs.hooked import HookedLM
    from sweep.inputs.models import load_hf_model, load_tokenizer, tl_processing
    from sweep.inputs.saes import check_sae_fits, load_saes
    from tl_oracle import to_hooked

    cfg = compose_config(SMALL)
    device = torch.device("cpu")
    tokenizer = load_tokenizer(cfg.model)
    (sae,) = load_saes(cfg.sae, device).values()
    hf = load_hf_model(cfg.model, device)
    processing = tl_processing(sae.cfg.metadata.model_from_pretrained_kwargs)
    model = HookedLM.wrap(hf, processing)
    return SimpleNamespace(
        cfg=cfg,
        hf=hf,
        model=model,
        tl=to_hooked(hf, model_path(cfg.model), processing, device),
        tokenizer=tokenizer,
        sae=sae,
        hook=check_sae_fits(sae, model),
        tokens=build_token_sets(cfg.data, tokenizer)[0],
        processing=processing,
    )
