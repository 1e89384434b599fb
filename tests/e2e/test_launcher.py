"""qfeat's local launcher: one job per GPU from an explicit device list, the rest queued, and a
status line per state change; and Hydra finding the launcher plugin."""

import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import psutil

from conftest import ROOT, SMALL, SUBPROCESS_TIMEOUT_S, launch

SEEN = re.compile(r"qfeat job #(\d+) CUDA_VISIBLE_DEVICES='([^']*)' start (\S+)")
ENDED = re.compile(r"qfeat job #(\d+) end (\S+)")


def test_local_launcher_places_one_job_per_device_and_queues_the_rest(tmp_path: Path) -> None:
    proc = launch(
        "-m",
        "bits=2,3,4",
        "hydra/launcher=local",
        "hydra.launcher.devices=[0,1]",
        *SMALL,
        f"out_root={tmp_path}",
    )
    # What each job saw, from its own log (written by the job's process, not the launcher).
    seen, ended = {}, {}
    for log in tmp_path.glob("default/logs/multirun_*/.submitit/*/*_log.out"):
        text = log.read_text()
        for num, devices, start in SEEN.findall(text):
            seen[int(num)] = (devices, datetime.fromisoformat(start))
        for num, end in ENDED.findall(text):
            ended[int(num)] = datetime.fromisoformat(end)
    assert sorted(seen) == sorted(ended) == [0, 1, 2]
    assert all(devices in ("0", "1") for devices, _ in seen.values())
    for a in seen:
        for b in seen:
            overlap = a < b and seen[a][1] < ended[b] and seen[b][1] < ended[a]
            assert not (overlap and seen[a][0] == seen[b][0]), f"jobs {a} and {b} shared a GPU"
    # The third job waited for a device: it started after one of the first two ended.
    assert seen[2][1] >= min(ended[0], ended[1])
    for num in range(3):
        states = re.findall(rf"#{num} bits=\d \[\d+\] gpu \d: (\w+)", proc.stdout)
        assert states[-2:] == ["running", "done"], proc.stdout[-2000:]


def test_hydra_finds_the_launchers_from_the_repository_root() -> None:
    discover = (
        "from hydra.core.plugins import Plugins; from hydra.plugins.launcher import Launcher; "
        "print([p.__name__ for p in Plugins.instance().discover(Launcher)])"
    )
    proc = subprocess.run(
        [sys.executable, "-c", discover], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert "QfeatLocalLauncher" in proc.stdout and "QfeatSlurmLauncher" in proc.stdout, proc.stderr


def test_a_local_job_that_dies_fails_the_launch_with_its_reason(tmp_path: Path) -> None:
    """A local job's process killed (SIGKILL) while it runs: the launch records the job failed
    with the reason, lists it in the closing table and exits 1; no result looks complete."""
    args = ["launch.py", "-m", "bits=4", "hydra/launcher=local", *SMALL, f"out_root={tmp_path}"]
    launcher = subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines, deadline = [], time.time() + SUBPROCESS_TIMEOUT_S
    for line in launcher.stdout:
        lines.append(line)
        if ": running" in line or time.time() > deadline:
            break
    workers = [p for p in psutil.Process(launcher.pid).children(recursive=True)]
    assert workers, "".join(lines)
    for worker in workers:
        worker.send_signal(signal.SIGKILL)
    out, _ = launcher.communicate(timeout=SUBPROCESS_TIMEOUT_S)
    output = "".join(lines) + out
    assert launcher.returncode == 1, output[-3000:]
    assert "Traceback" not in output and "1 of 1 jobs failed" in output
    (row,) = [line for line in output.splitlines() if line.strip().startswith("0 ")]
    assert "failed" in row and "killed" in row
    assert not list(tmp_path.rglob("summary.json"))
