"""Results that cannot mislead: content keys, honest exit status, one-line failures."""

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from conftest import ROOT, SMALL, compose_config, default_sae_dir
from sweep.constants import FEATURES_FILE, OUTCOME_FILE, SUMMARY_FILE, TINY_ASSETS
from sweep.data import decode_text
from sweep.errors import QfeatError
from sweep.job import reference_identity, run
from sweep.record import is_complete, job_dir, job_key, write_json_atomic

TEXT = (TINY_ASSETS / "heldout.txt").read_text()
SMALL_NO_STRIDE = [o for o in SMALL if not o.startswith("eval.sliding_window_stride")]


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python launch.py ARGS` as a user runs it, whatever its exit status."""
    return subprocess.run(
        [sys.executable, "launch.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )


def local_data_cfg(path: Path, out: Path):
    return compose_config([*SMALL, "data=local", f"data.path={path}", f"out_root={out}"])


def test_rewritten_data_file_is_measured_again(tmp_path: Path) -> None:
    text = tmp_path / "text.txt"
    text.write_text(TEXT)
    first = run(local_data_cfg(text, tmp_path))
    text.write_text(TEXT[len(TEXT) // 2 :] + TEXT[: len(TEXT) // 2])  # same size, new content
    again = run(local_data_cfg(text, tmp_path))
    assert "skipped" not in again
    assert again["fp_ppl"] != first["fp_ppl"]
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
    assert job_key(cfgs[0]) == job_key(cfgs[1])  # two checkouts / mount points
    (tmp_path / "b" / "lm" / "config.json").write_text(
        (tmp_path / "b" / "lm" / "config.json").read_text().replace("}", ', "x": 1}', 1)
    )
    assert job_key(cfgs[0]) != job_key(cfgs[1])  # a checkpoint rebuilt in place


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
        hf = SimpleNamespace(config=SimpleNamespace(_commit_hash=None))
        identity = reference_identity(cfg, hf, {tiny.hook: tiny.sae}, tiny.processing, 1)
        identities.append(json.dumps(identity, sort_keys=True, default=str))
    assert identities[0] == identities[1]
    assert str(tmp_path) not in identities[0]


def outcome_rows(stdout_and_err: str) -> list[str]:
    lines = stdout_and_err.splitlines()
    start = next(i for i, line in enumerate(lines) if "outcomes of" in line)
    return lines[start + 2 :]


@pytest.mark.parametrize("launcher", ["basic", "local"])
def test_multirun_with_a_failed_job_exits_nonzero_with_a_table(launcher, tmp_path) -> None:
    proc = run_cli(
        "-m",
        f"hydra/launcher={launcher}",
        *SMALL_NO_STRIDE,
        "data.n_sequences=8",
        "eval.sliding_window_stride=0,null",
        f"out_root={tmp_path}",
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output[-3000:]
    assert "Traceback" not in output
    rows = [row for row in outcome_rows(output) if "eval.sliding_window_stride" in row]
    assert len(rows) == 2, output[-3000:]
    (failed,) = [r for r in rows if "failed" in r]
    assert "sliding_window_stride=0" in failed and "must be in 1..data.seq_len-1" in failed
    (done,) = [r for r in rows if "complete" in r]
    assert "sliding_window_stride=null" in done
    assert "1 of 2 jobs failed" in output
    assert len(list(tmp_path.rglob(OUTCOME_FILE))) == 2


def test_multirun_whose_jobs_all_fail_exits_nonzero(tmp_path: Path) -> None:
    proc = run_cli(
        "-m", "bits=3,4", *SMALL_NO_STRIDE, "eval.sliding_window_stride=0", f"out_root={tmp_path}"
    )
    assert proc.returncode == 1
    assert "2 of 2 jobs failed" in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("cuda", "runtime.device='cuda' but CUDA is not available here"),
        ("bogus", "runtime.device='bogus' is not a device"),
    ],
)
def test_unavailable_device_is_one_line(device: str, message: str, tmp_path: Path) -> None:
    if device == "cuda":
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
    proc = run_cli(*SMALL, f"runtime.device={device}", f"out_root={tmp_path}")
    assert proc.returncode == 2
    assert message in proc.stdout + proc.stderr and "Traceback" not in proc.stderr


def test_text_encodings_are_decoded_or_named() -> None:
    assert decode_text("héllo wörld".encode("utf-16"), "f") == "héllo wörld"
    assert decode_text("\ufeffhi".encode(), "f") == "hi"
    with pytest.raises(QfeatError, match="is not UTF-8 text"):
        decode_text("héllo".encode("latin-1"), "f")
    with pytest.raises(QfeatError, match="looks binary"):
        decode_text(b"\x00\x01\x02abc", "f")


def test_binary_data_file_is_one_line(tmp_path: Path) -> None:
    blob = tmp_path / "blob.bin"
    blob.write_bytes(bytes(range(256)) * 64)
    proc = run_cli(*SMALL, "data=local", f"data.path={blob}", f"out_root={tmp_path}")
    assert proc.returncode == 2
    assert "is not UTF-8 text" in proc.stdout + proc.stderr and "Traceback" not in proc.stderr


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


def test_garbage_summary_is_recomputed(small_cfg) -> None:
    out = job_dir(small_cfg, job_key(small_cfg))
    out.mkdir(parents=True)
    (out / SUMMARY_FILE).write_bytes(os.urandom(512))
    (out / FEATURES_FILE).write_bytes(b"junk")
    assert not is_complete(out, job_key(small_cfg))
    metrics = run(small_cfg)
    assert "skipped" not in metrics and is_complete(out, job_key(small_cfg))


def test_unwritable_results_fail_before_heavy_work(tmp_path: Path, monkeypatch) -> None:
    import sweep.job

    (tmp_path / "file").write_text("not a directory")
    cfg = compose_config([*SMALL, f"out_root={tmp_path / 'file' / 'out'}", "reference_cache=null"])
    monkeypatch.setattr(sweep.job, "load_hf_model", lambda *a: pytest.fail("loaded a model"))
    with pytest.raises(QfeatError, match="cannot write results to"):
        run(cfg)


def test_disk_full_is_one_line_and_leaves_nothing_complete(small_cfg, monkeypatch) -> None:
    def full(self, path, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(pd.DataFrame, "to_parquet", full)
    with pytest.raises(QfeatError, match=r"cannot write .*\.parquet.*No space left"):
        run(small_cfg)
    out = job_dir(small_cfg, job_key(small_cfg))
    assert not (out / SUMMARY_FILE).exists()
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o002, 0o664)])
def test_result_files_follow_the_umask(umask: int, mode: int, tmp_path: Path) -> None:
    old = os.umask(umask)
    try:
        write_json_atomic(tmp_path / "x.json", {"a": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "x.json").stat().st_mode & 0o777 == mode


def test_wandb_mode_from_the_environment_wins(small_cfg, monkeypatch) -> None:
    from sweep import tracking

    small_cfg.wandb.mode = "offline"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert tracking.start(small_cfg, "k") is None
    monkeypatch.setenv("WANDB_MODE", "sideways")
    with pytest.raises(QfeatError, match="WANDB_MODE='sideways'"):
        tracking.wandb_mode(small_cfg)


def test_console_shows_qfeat_lines_only(tmp_path: Path) -> None:
    proc = run_cli(*SMALL, "wandb.mode=offline", f"out_root={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    assert sum("wandb" in line for line in lines) == 1, lines
    assert not [line for line in lines if "Loading" in line or "WARNING" in line], lines
    assert any("active features survived" in line for line in lines)
    assert len(lines) <= 15, lines
