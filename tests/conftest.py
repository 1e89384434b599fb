"""Shared fixtures: seeding, composing the shipped Hydra configs, one tiny model per session."""

import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from sweep.schema import register_configs

ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = str(ROOT / "conf")
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


@pytest.fixture(autouse=True)
def _seed() -> None:
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


def launch(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """`python launch.py ARGS` from the repository root, as a user runs it; must succeed."""
    cmd = [sys.executable, "launch.py", *args]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def compose_config(overrides: list[str] | None = None) -> DictConfig:
    """The real shipped config, composed as launch.py would, with test overrides."""
    register_configs()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides or []))


def default_sae_dir() -> Path:
    """The SAE-Lens directory of the shipped default SAE (conf/config.yaml's `sae`)."""
    from sweep.saes import local_sae_path

    return local_sae_path(compose_config().sae)


@pytest.fixture
def small_cfg(tmp_path: Path) -> DictConfig:
    """The default job, shrunk, writing under tmp_path."""
    return compose_config([*SMALL, f"out_root={tmp_path}"])


@pytest.fixture(scope="session")
def tiny():
    """The embedded model once: HF model, its hooked wrapper, TL oracle, tokenizer, SAE, tokens."""
    from types import SimpleNamespace

    from tl_oracle import to_hooked

    from sweep.data import build_token_set
    from sweep.hooked import HookedLM
    from sweep.models import load_hf_model, load_tokenizer, model_path, tl_processing
    from sweep.saes import check_sae_fits, load_saes

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
        tokens=build_token_set(cfg.data, tokenizer),
        processing=processing,
    )
