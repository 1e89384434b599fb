"""Results that cannot mislead: content keys, one-line failures, nothing lost or half-written
when a disk fills or wandb cannot reach its server."""

import errno
import json
import logging
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from safetensors import SafetensorError

import sweep.job.stages
import sweep.passes.reference_cache
from conftest import SMALL, compose_config, default_sae_dir
from sweep.base.atomic import write_json_atomic
from sweep.base.errors import QfeatError
from sweep.base.paths import TINY_ASSETS
from sweep.inputs.data import decode_text
from sweep.job import tracking
from sweep.job.keys import completed, plan_job
from sweep.job.run import run
from sweep.job.stages import Loaded, reference_identity
from sweep.results.files import FEATURES_FILE, SUMMARY_FILE

TEXT = (TINY_ASSETS / "heldout.txt").read_text()


def local_data_cfg(path: Path, out: Path):
    return compose_config([*SMALL, "data=local", f"data.path={path}", f"out_root={out}"])


def test_rewritten_data_file_is_measured_again(tmp_path: Path) -> None:
    text = tmp_path / "text.txt"
    text.write_text(TEXT)
    first = run(local_data_cfg(text, tmp_path))
    text.write_text(TEXT[len(TEXT) // 2 :] + TEXT[: len(TEXT) // 2])  # same size, new content
    again = run(local_data_cfg(text, tmp_path))
    assert not again.skipped
    assert again.summary.metrics.fp_ppl != first.summary.metrics.fp_ppl
    assert len(list(tmp_path.glob(f"default/jobs/*/{SUMMARY_FILE}"))) == 2


def test_keys_follow_content_not_paths(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "text.txt").write_text(TEXT)
        shutil.copytree(TINY_ASSETS / "lm", tmp_path / name / "lm")
    cfgs = [
        compose_config(
            [
                *SMALL,
                "data=local",
                f"data.path={tmp_path / name / 'text.txt'}",
                "model.name=hf",
                f"model.path={tmp_path / name / 'lm'}",
            ]
        )
        for name in ("a", "b")
    ]
    assert plan_job(cfgs[0]).key == plan_job(cfgs[1]).key  # two checkouts / mount points
    (tmp_path / "b" / "lm" / "config.json").write_text(
        (tmp_path / "b" / "lm" / "config.json").read_text().replace("}", ', "x": 1}', 1)
    )
    assert plan_job(cfgs[0]).key != plan_job(cfgs[1]).key  # a checkpoint rebuilt in place


def test_fp_reference_key_is_the_same_in_two_checkouts(tmp_path: Path, tiny) -> None:
    identities = []
    for name in ("a", "b"):
        shutil.copytree(TINY_ASSETS / "lm", tmp_path / name / "lm")
        shutil.copytree(default_sae_dir(), tmp_path / name / "sae")
        cfg = compose_config(
            [
                *SMALL,
                "model.name=hf",
                f"model.path={tmp_path / name / 'lm'}",
                "sae.name=local",
                f"sae.path={tmp_path / name / 'sae'}",
            ]
        )
        loaded = Loaded(tiny.model.device, {tiny.hook: tiny.sae}, tiny.hf, tiny.processing)
        identity = reference_identity(cfg, plan_job(cfg).keyed, loaded)
        identities.append(json.dumps(identity, sort_keys=True, default=str))
    assert identities[0] == identities[1]
    assert str(tmp_path) not in identities[0]


def test_the_default_fp_reference_key_is_unchanged(tiny, tmp_path: Path) -> None:
    """The house refactor changed job keys (RESULTS_VERSION 2) but not what determines the FP
    reference: the default job's reference key is the one qfeat 0.1 computed (a shared cache
    of FP references stays valid)."""
    cfg = compose_config([f"out_root={tmp_path}"])
    loaded = Loaded(tiny.model.device, {tiny.hook: tiny.sae}, tiny.hf, tiny.processing)
    identity = reference_identity(cfg, plan_job(cfg).keyed, loaded)
    sets = sweep.job.stages.load_tokens(cfg, plan_job(cfg).method)
    key = sweep.passes.reference_cache.reference_key(identity, sets.tokens)
    assert key == "07598b136171b57284dc3e3a"


def test_text_encodings_are_decoded_or_named() -> None:
    assert decode_text("héllo wörld".encode("utf-16"), "f") == "héllo wörld"
    assert decode_text("\ufeffhi".encode(), "f") == "hi"
    with pytest.raises(QfeatError, match="is not UTF-8 text"):
        decode_text("héllo".encode("latin-1"), "f")
    with pytest.raises(QfeatError, match="looks binary"):
        decode_text(b"\x00\x01\x02abc", "f")


def broken_sae(tmp_path: Path, damage: str) -> Path:
    sae = tmp_path / "sae"
    shutil.copytree(default_sae_dir(), sae)
    weights = sae / "sae_weights.safetensors"
    if damage == "truncated":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    else:
        cfg = json.loads((sae / "cfg.json").read_text())
        cfg["d_sae"] = cfg["d_sae"] * 2
        (sae / "cfg.json").write_text(json.dumps(cfg))
    return sae


@pytest.mark.parametrize("damage", ["truncated", "wrong_d_sae"])
def test_broken_sae_files_are_one_line(damage: str, tmp_path: Path) -> None:
    sae = broken_sae(tmp_path, damage)
    cfg = compose_config([*SMALL, "sae.name=local", f"sae.path={sae}", f"out_root={tmp_path}"])
    with pytest.raises(QfeatError, match=f"cannot load SAE from '{sae}'") as caught:
        run(cfg)
    assert "\n" not in str(caught.value)


def test_sae_config_disagreeing_with_its_weights_names_the_field(tmp_path: Path) -> None:
    sae = tmp_path / "sae"
    shutil.copytree(default_sae_dir(), sae)
    cfg = json.loads((sae / "cfg.json").read_text())
    d_in = cfg["d_in"]
    cfg["d_in"] = d_in // 2
    (sae / "cfg.json").write_text(json.dumps(cfg))
    job = compose_config([*SMALL, "sae.name=local", f"sae.path={sae}", f"out_root={tmp_path}"])
    message = (
        rf"cfg.json has d_in={d_in // 2} but W_enc is \[{d_in}, {cfg['d_sae']}\] \(d_in x d_sae\)"
    )
    with pytest.raises(QfeatError, match=message):
        run(job)


def test_garbage_summary_is_recomputed(small_cfg) -> None:
    plan = plan_job(small_cfg)
    plan.out.mkdir(parents=True)
    (plan.out / SUMMARY_FILE).write_bytes(os.urandom(512))
    (plan.out / FEATURES_FILE).write_bytes(b"junk")
    assert completed(plan) is None
    result = run(small_cfg)
    assert not result.skipped and completed(plan) == result.summary


def test_unwritable_results_fail_before_heavy_work(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "file").write_text("not a directory")
    cfg = compose_config([*SMALL, f"out_root={tmp_path / 'file' / 'out'}", "reference_cache=null"])
    monkeypatch.setattr(sweep.job.stages, "load_hf_model", lambda *a: pytest.fail("loaded a model"))
    with pytest.raises(QfeatError, match="cannot write results to"):
        run(cfg)


def test_disk_full_is_one_line_and_leaves_nothing_complete(small_cfg, monkeypatch) -> None:
    def full(self, path, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(pd.DataFrame, "to_parquet", full)
    with pytest.raises(QfeatError, match=r"cannot write .*\.parquet.*No space left"):
        run(small_cfg)
    out = plan_job(small_cfg).out
    assert not (out / SUMMARY_FILE).exists()
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_disk_full_while_the_fp_reference_is_written_is_one_line(small_cfg, monkeypatch) -> None:
    """safetensors reports I/O failures as its own error, not OSError: still one line naming
    the file, and no cache entry that looks complete."""

    def full(tensors, path, *args, **kwargs):
        raise SafetensorError("Error while serializing: IoError(No space left on device)")

    monkeypatch.setattr(sweep.passes.reference_cache, "save_file", full)
    with pytest.raises(QfeatError, match=r"cannot write FP reference '.*reference\.safetensors'"):
        run(small_cfg)
    cache = Path(small_cfg.reference_cache)
    assert not list(cache.rglob("reference.json")) and not list(cache.rglob("*.tmp"))


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o002, 0o664)])
def test_result_files_follow_the_umask(umask: int, mode: int, tmp_path: Path) -> None:
    old = os.umask(umask)
    try:
        write_json_atomic(tmp_path / "x.json", {"a": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "x.json").stat().st_mode & 0o777 == mode


def test_wandb_mode_from_the_environment_wins(small_cfg, monkeypatch) -> None:
    small_cfg.wandb.mode = "offline"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert tracking.request(small_cfg, "k", Path("."))["mode"] == "disabled"
    assert tracking.start(tracking.request(small_cfg, "k", Path("."))) is None
    monkeypatch.setenv("WANDB_MODE", "sideways")
    with pytest.raises(QfeatError, match="WANDB_MODE='sideways'"):
        tracking.request(small_cfg, "k", Path("."))


def test_wandb_online_without_network_falls_back_offline(small_cfg, monkeypatch, caplog) -> None:
    """wandb is a view: an online run that cannot reach its server (here a closed loopback
    port) costs one warning and the job completes, logging offline (syncable later)."""
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("WANDB_API_KEY", "0" * 40)
    small_cfg.wandb.init_timeout_s = 5
    small_cfg.wandb.background = False  # in this process, where caplog sees its warning
    with caplog.at_level(logging.WARNING, logger="qfeat"):
        result = run(small_cfg)
    assert not result.skipped and completed(plan_job(small_cfg)) == result.summary
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("wandb online run could not start" in w for w in warnings), warnings
    assert list(Path(small_cfg.out_root).rglob("offline-run-*")), "no offline run to sync"
