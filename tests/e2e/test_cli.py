"""The command line as a user runs it: honest exit status, one-line failures, a readable
console (`python launch.py …` in a subprocess, bounded by a timeout)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, SMALL, SUBPROCESS_TIMEOUT_S
from sweep.results.files import OUTCOME_FILE, SUMMARY_FILE

SMALL_NO_STRIDE = [o for o in SMALL if not o.startswith("eval.sliding_window_stride")]


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python launch.py ARGS` as a user runs it, whatever its exit status."""
    return subprocess.run(
        [sys.executable, "launch.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_S,
        env={**os.environ, **(env or {})},
    )


def error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [x for x in (proc.stdout + proc.stderr).splitlines() if "error" in x.lower()]


def test_a_bad_value_is_one_line_and_exit_2(tmp_path: Path) -> None:
    proc = run_cli("bits=1", f"out_root={tmp_path}")
    assert proc.returncode == 2
    (line,) = error_lines(proc)
    assert "compression=rtn supports bits in 2..16; got bits=1" in line
    assert "Traceback" not in proc.stderr


def test_cli_refuses_nf4_at_a_width_it_lacks_in_one_line(tmp_path: Path) -> None:
    """nf4 has no `bits` option: bits=3 does not apply to it, while an option it lacks is
    refused by Hydra when the config is composed."""
    proc = run_cli("compression=nf4", "compression.symmetric=true", f"out_root={tmp_path}")
    assert proc.returncode != 0 and "symmetric" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and not list(tmp_path.rglob(SUMMARY_FILE))


@pytest.mark.parametrize("where", ["under_a_file", "unwritable"])
def test_an_unwritable_out_root_is_one_line_before_hydra_writes(where: str, tmp_path) -> None:
    """Hydra creates its log directory under out_root before qfeat runs: the launch checks
    the sweep's directory first (a regular file where a directory should be; /sys, which
    refuses directories even to root)."""
    if where == "under_a_file":
        (tmp_path / "file").write_text("not a directory")
        out = tmp_path / "file" / "out"
    else:
        out = Path("/sys/qfeat-out")
    for args in ([], ["-m", "bits=4,5"]):
        proc = run_cli(*args, *SMALL, f"out_root={out}")
        assert proc.returncode == 2, (proc.stdout + proc.stderr)[-2000:]
        (line,) = error_lines(proc)
        assert "cannot write results to" in line and str(out) in line
        assert "Traceback" not in proc.stdout + proc.stderr


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


def test_binary_data_file_is_one_line(tmp_path: Path) -> None:
    blob = tmp_path / "blob.bin"
    blob.write_bytes(bytes(range(256)) * 64)
    proc = run_cli(*SMALL, "data=local", f"data.path={blob}", f"out_root={tmp_path}")
    assert proc.returncode == 2
    assert "is not UTF-8 text" in proc.stdout + proc.stderr and "Traceback" not in proc.stderr


def test_console_shows_qfeat_lines_only(tmp_path: Path) -> None:
    proc = run_cli(*SMALL, "wandb.mode=offline", f"out_root={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    assert sum("wandb" in line for line in lines) == 1, lines
    assert not [line for line in lines if "Loading" in line or "WARNING" in line], lines
    assert any("active features survived" in line for line in lines)
    assert len(lines) <= 15, lines
