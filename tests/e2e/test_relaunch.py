"""Relaunching through each launcher: what is complete is found before anything is launched, a
complete sweep launches nothing, a partial one only its missing jobs, jobs sharing a key run
once, and the closing table still lists every job."""

import re
import shutil
from pathlib import Path

import pytest

from conftest import SMALL, launch
from sweep.job.outcomes import read_outcomes
from sweep.results.files import SUMMARY_FILE

LOCAL = ["hydra/launcher=local", "hydra.launcher.poll_s=0.2"]


def last_sweep_dir(out: Path) -> Path:
    return max((out / "default" / "logs").glob("multirun_*"), key=lambda p: p.stat().st_mtime)


def launched(sweep_dir: Path) -> dict[str, int]:
    """What a launch started: submitit tasks, and jobs run (Hydra made a .hydra dir for each)."""
    return {
        "submitit": len(list(sweep_dir.glob(".submitit/*/*_submitted.pkl"))),
        "ran": len(list(sweep_dir.glob("*/.hydra"))),
    }


def table(out: Path) -> list[tuple[str, str, str | None]]:
    """The closing table's rows: job, status, and the job it shared its key with."""
    return [(o.job, o.status, o.same_as) for o in read_outcomes(last_sweep_dir(out))]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """bits=2,3 computed once; each test relaunches a copy."""
    out = tmp_path_factory.mktemp("sweep")
    launch("-m", "bits=2,3", *SMALL, f"out_root={out}")
    return out


@pytest.mark.parametrize("launcher", [[], LOCAL], ids=["qfeat_basic", "local"])
def test_a_complete_sweep_launches_nothing(sweep, tmp_path, launcher) -> None:
    out = tmp_path / "out"
    shutil.copytree(sweep, out)
    proc = launch("-m", "bits=2,3", *SMALL, f"out_root={out}", *launcher)
    assert "2 jobs: 2 complete (skipped)" in (proc.stdout + proc.stderr) and "submitting 0" in (
        proc.stdout + proc.stderr
    )
    assert launched(last_sweep_dir(out)) == {"submitit": 0, "ran": 0}
    assert table(out) == [("0", "skipped", None), ("1", "skipped", None)]
    assert re.search(  # % surv, % uncertain and ΔPPL read back from the summary
        r"\n +1  bits=3 +skipped +\d+\.\d +\d+\.\d +[+-]\d+\.\d{3}", (proc.stdout + proc.stderr)
    )


@pytest.mark.parametrize("launcher", [[], LOCAL], ids=["qfeat_basic", "local"])
def test_a_partial_relaunch_runs_only_the_missing_job(sweep, tmp_path, launcher) -> None:
    out = tmp_path / "out"
    shutil.copytree(sweep, out)
    jobs = {p.parent: p.stat().st_mtime_ns for p in out.glob(f"default/jobs/*/{SUMMARY_FILE}")}
    removed = sorted(jobs)[0]
    shutil.rmtree(removed)
    launch("-m", "bits=2,3", *SMALL, f"out_root={out}", *launcher)
    assert launched(last_sweep_dir(out)) == {"submitit": 1 if launcher else 0, "ran": 1}
    assert sorted(status for _, status, _ in table(out)) == ["complete", "skipped"]
    for job, mtime in jobs.items():  # the kept job untouched, the removed one recomputed
        assert (job / SUMMARY_FILE).exists()
        assert job == removed or (job / SUMMARY_FILE).stat().st_mtime_ns == mtime


def test_jobs_sharing_a_key_run_once(tmp_path) -> None:
    """compression=none has no bit-width: bits=2,3 is one job, run once, reported twice."""
    proc = launch("-m", "compression=none", "bits=2,3", *SMALL, f"out_root={tmp_path}", *LOCAL)
    assert "1 sharing a key with another job of this launch" in (proc.stdout + proc.stderr)
    assert launched(last_sweep_dir(tmp_path)) == {"submitit": 1, "ran": 1}
    assert table(tmp_path) == [("0", "complete", None), ("1", "skipped", "0")]
    assert "(same key as job 0)" in (proc.stdout + proc.stderr)
    assert len(list(tmp_path.glob(f"default/jobs/*/{SUMMARY_FILE}"))) == 1
