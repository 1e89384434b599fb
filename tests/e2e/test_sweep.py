"""Sweeps as a user runs them: real submitit processes, kill and resume, relaunch, wandb."""

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from conftest import ROOT, SMALL, launch
from sweep.results.files import FEATURES_FILE, SUMMARY_FILE
from sweep.results.summary import parse_summary


def summaries(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(out.glob(f"*/jobs/*/{SUMMARY_FILE}"))]


def test_submitit_local_processes_share_one_fp_reference(tmp_path: Path) -> None:
    launch("-m", "bits=4,8", "hydra/launcher=local", *SMALL, f"out_root={tmp_path}")
    done = summaries(tmp_path)
    assert sorted(s["bits"] for s in done) == [4, 8]
    assert len({s["reference"]["key"] for s in done}) == 1
    assert sorted(s["reference"]["computed"] for s in done) == [False, True]
    assert len(list((tmp_path / "reference_cache").glob("*/reference.json"))) == 1


def test_relaunching_a_multirun_finishes_only_what_is_missing(tmp_path: Path) -> None:
    launch("-m", "bits=4", *SMALL, f"out_root={tmp_path}")
    first = {s["bits"]: s["created"] for s in summaries(tmp_path)}
    proc = launch("-m", "bits=4,8", *SMALL, f"out_root={tmp_path}")
    assert "2 jobs: 1 complete (skipped)" in (proc.stdout + proc.stderr) and "submitting 1" in (
        proc.stdout + proc.stderr
    )
    assert re.search(
        r"\n +0  bits=4 +skipped .*\n +1  bits=8 +complete ", (proc.stdout + proc.stderr)
    )
    after = {s["bits"]: s["created"] for s in summaries(tmp_path)}
    assert after[4] == first[4] and 8 in after


def test_killed_job_leaves_nothing_complete_and_rerun_finishes(tmp_path: Path) -> None:
    args = [sys.executable, "launch.py", *SMALL, f"out_root={tmp_path}", "data.n_sequences=64"]
    proc = subprocess.Popen(
        args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.time() + 300
    for line in proc.stdout:
        if "FP reference" in line or time.time() > deadline:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert not list(tmp_path.glob(f"*/jobs/*/{SUMMARY_FILE}"))
    launch(*args[2:])
    (job,) = tmp_path.glob("*/jobs/*")
    frame = pd.read_parquet(job / FEATURES_FILE)
    assert frame["feature"].is_unique and len(frame) == frame["feature"].max() + 1
    assert json.loads((job / SUMMARY_FILE).read_text())["status"] == "complete"


def test_wandb_runs_are_made_in_the_background_one_per_job(tmp_path: Path) -> None:
    """A sweep with wandb at its default (offline) queues each job's run; the launch's writer
    makes one run per job, with its config, summary.json and per-feature table, and ends."""
    proc = launch("-m", "bits=4,8", *SMALL, "wandb.mode=offline", f"out_root={tmp_path}")
    assert proc.stdout.count("logged in the background") == 2
    writer_log = tmp_path / "default" / "wandb" / "queue" / "writer.log"
    deadline = time.time() + 300
    while "ends" not in (writer_log.read_text() if writer_log.exists() else ""):
        assert time.time() < deadline, "the wandb writer did not end"
        time.sleep(1)
    assert "2 runs logged" in writer_log.read_text()
    runs = {
        p.name.rsplit("-", 1)[-1]: p for p in (tmp_path / "default" / "wandb").glob("offline-run-*")
    }
    done = {s["key"]: s for s in summaries(tmp_path)}
    assert sorted(runs) == sorted(done)
    for key, run_dir in runs.items():
        (table_file,) = run_dir.glob("files/media/table/features_*.table.json")
        table = json.loads(table_file.read_text())
        frame = pd.read_parquet(tmp_path / "default" / "jobs" / key / FEATURES_FILE)
        assert table["columns"] == list(frame.columns) and len(table["data"]) == len(frame)
        saved = parse_summary(json.loads((run_dir / "files" / SUMMARY_FILE).read_text()))
        assert saved == parse_summary(done[key])
    assert [p.name for p in writer_log.parent.iterdir()] == ["writer.log"]  # every request done
