"""What a relaunch costs at cluster scale: a sweep of N jobs relaunched when all are complete and
when a few are missing, per launcher; the wall time and how many jobs were launched.

python -m benchmarks.relaunch [--jobs 500] [--gaps 2] [--launchers qfeat_basic,basic,local]
                              [--root DIR] [--json PATH]

The sweep is `+experiment=debug seed=range(0,N)` (every seed is its own job key). One job runs
for real; the other N-1 complete jobs are copies of its files under each job's key (so the
relaunch finds them complete; what they hold does not matter here). A partial relaunch first
removes `gaps` jobs spread over the grid: those run for real. `qfeat_basic` is qfeat's default
launcher, `basic` Hydra's own sweeper and launcher (what qfeat used before), `local` and
`slurm` (needs scripts/slurm_local.sh) submitit's through qfeat's. Launched jobs are counted
from the closing table (status complete: computed) and, for submitit, from the task folders
submitit made. `--root` runs another checkout's launch.py (the keys are this checkout's).
"""

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import load_average
from sweep.config.compose import compose_config
from sweep.job.keys import plan_job
from sweep.job.outcomes import COMPLETE, read_outcomes
from sweep.results.files import SUMMARY_FILE
from sweep.results.summary import parse_summary

ROOT = Path(__file__).resolve().parents[1]
SWEEP = ["+experiment=debug", "sweep_name=relaunch"]
LAUNCHERS = {
    "qfeat_basic": [],
    "basic": ["hydra/sweeper=basic", "hydra/launcher=basic"],
    "local": ["hydra/launcher=local", "hydra.launcher.poll_s=0.5"],
    "slurm": ["hydra/launcher=slurm_local"],
}


def job_dirs(out: Path, n_jobs: int) -> dict[int, Path]:
    """Each seed's job directory, by the job key the launch will compute."""
    cfg = compose_config([*SWEEP, f"out_root={out}"])
    dirs = {}
    for seed in range(n_jobs):
        cfg.seed = seed
        dirs[seed] = plan_job(cfg).out
    return dirs


def fill(dirs: dict[int, Path], template: Path) -> None:
    """Every missing job as a copy of the template job's files under its own key."""
    summary = parse_summary(json.loads((template / SUMMARY_FILE).read_text()))
    for d in dirs.values():
        if d.exists():
            continue
        shutil.copytree(template, d)
        summary.key = d.name
        (d / SUMMARY_FILE).write_text(json.dumps(summary.to_json(), sort_keys=True))


def launch(root: Path, out: Path, n_jobs: int, launcher: list[str]) -> dict:
    """Relaunch the sweep; its wall time, exit status and what it launched."""
    args = [*SWEEP, f"seed=range(0,{n_jobs})", f"out_root={out}", *launcher]
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "launch.py", "-m", *args], cwd=root, capture_output=True, text=True
    )
    wall = time.perf_counter() - start
    (sweep_dir,) = (out / "relaunch" / "logs").glob("multirun_*")  # earlier ones are renamed
    outcomes = read_outcomes(sweep_dir)
    result = {
        "wall_s": round(wall, 2),
        "rc": proc.returncode,
        "jobs_in_table": len(outcomes),
        "computed": sum(o.status == COMPLETE for o in outcomes),
        "submitit_tasks": len(list((sweep_dir / ".submitit").glob("*/*_submitted.pkl"))),
    }
    if proc.returncode != 0:
        result["stderr_tail"] = proc.stderr[-1500:]
    sweep_dir.rename(sweep_dir.with_name(f"launch{len(list(sweep_dir.parent.iterdir()))}"))
    return result


def run(n_jobs: int, gaps: int, launchers: list[str], root: Path) -> dict:
    """Complete and partial relaunches of an N-job sweep for each launcher."""
    out = Path(f"/tmp/qfeat-relaunch-{n_jobs}")
    shutil.rmtree(out, ignore_errors=True)
    dirs = job_dirs(out, n_jobs)
    subprocess.run(
        [sys.executable, "launch.py", *SWEEP, "seed=0", f"out_root={out}"], cwd=ROOT, check=True
    )
    fill(dirs, dirs[0])
    missing = [dirs[s] for s in range(1, n_jobs, max(1, n_jobs // gaps))][:gaps]
    results = {}
    for name in launchers:
        load = load_average()
        complete = launch(root, out, n_jobs, LAUNCHERS[name])
        for d in missing:
            shutil.rmtree(d)
        partial = launch(root, out, n_jobs, LAUNCHERS[name])
        results[name] = {"complete": complete, "partial": partial, "load": [load, load_average()]}
        print(name, json.dumps(results[name]), flush=True)
    return {"jobs": n_jobs, "gaps": gaps, "root": str(root), "launchers": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--gaps", type=int, default=2)
    parser.add_argument("--launchers", default="qfeat_basic,basic,local")
    parser.add_argument("--root", type=Path, default=ROOT)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    report = run(args.jobs, args.gaps, args.launchers.split(","), args.root)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
