"""Every method: `qfeat-export` writes a checkpoint its library reloads, and `qfeat-audit` of it
measures what the in-sweep job measured (r to 1e-6), or export refuses in one line."""

from dataclasses import fields
from pathlib import Path

import pandas as pd
import pytest

from conftest import FAST, compose_config, default_sae_dir
from sweep.base.paths import TINY_ASSETS
from sweep.cli.audit import main as audit_main
from sweep.cli.export import main as export_main
from sweep.config.compression import METHODS
from sweep.job.keys import plan_job
from sweep.job.run import run
from sweep.results.files import FEATURES_FILE


def job_overrides(name: str) -> list[str]:
    """A job of `name` at a bit-width it takes, calibrating on 4 sequences where it does."""
    choices = METHODS.get(name).bit_choices
    bits = 4 if choices is None or 4 in choices else choices[0]
    options = {f.name for f in fields(METHODS.get(name))}
    calibration = (
        ["compression.calibration_sequences=4"] if "calibration_sequences" in options else []
    )
    return [*FAST, f"compression={name}", f"bits={bits}", *calibration]


@pytest.mark.parametrize("name", METHODS.names())
def test_export_then_audit_equals_the_in_sweep_job(name: str, tmp_path: Path) -> None:
    overrides = job_overrides(name)
    assert export_main([str(tmp_path / "ckpt"), *overrides]) == 0
    fields_ = [f"base={TINY_ASSETS / 'lm'}", f"candidate={tmp_path / 'ckpt'}"]
    sae = f"sae={default_sae_dir()}"
    assert audit_main([*fields_, sae, *FAST, f"out_root={tmp_path / 'audit'}"]) == 0
    (features,) = (tmp_path / "audit" / "audit" / "jobs").glob(f"*/{FEATURES_FILE}")
    audited = pd.read_parquet(features)
    cfg = compose_config([*overrides, f"out_root={tmp_path / 'sweep'}"])
    run(cfg)
    swept = pd.read_parquet(plan_job(cfg).out / FEATURES_FILE)
    assert (audited["active"] == swept["active"]).all() and audited["active"].any()
    diff = (audited["r"] - swept["r"]).abs()[audited["active"]]
    assert diff.max() < 1e-6, f"{name}: max |r_audit - r_sweep| = {diff.max():.2e}"
