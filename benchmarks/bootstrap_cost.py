"""What the token bootstrap costs a job: the default job before it existed ÷ with it.

python -m benchmarks.bootstrap_cost --before CHECKOUT [--repeats 3] [--json PATH]

CHECKOUT is a checkout of qfeat before the bootstrap (e.g. `git worktree add /tmp/before
97afd90`). Each variant is the default job (the embedded model and SAE, RTN 4-bit, 128 × 128
tokens) run in a fresh process with PYTHONPATH at its checkout, into a fresh directory with no
reference cache: `before` (no per-block statistics), `blocks` (this checkout with
survival.bootstrap.n_boot=0: per-block statistics and prefixes, no resampling) and `after` (the
shipped default, 1000 resamples). After one warm-up job each, variants are interleaved
`--repeats` times; each takes its median CPU time (the process's own work, not time spent
waiting for a core on a shared machine), so the ratios come from one run under the same load.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common import load_average

HERE = Path(__file__).resolve().parent.parent
QUIET = ["wandb.mode=disabled", "runtime.progress=false", "reference_cache=null"]
# One job in a fresh interpreter; prints its CPU seconds and its stage timings.
JOB = """
import json, logging, sys, time
from sweep.config.compose import compose_config
from sweep.job.run import run
logging.getLogger("qfeat").setLevel(logging.WARNING)
start = time.process_time()
summary = run(compose_config(sys.argv[1:])).summary
print(json.dumps({"cpu_s": time.process_time() - start, "stages": summary.timings_s}))
"""


def time_job(root: Path, overrides: list[str]) -> dict:
    """CPU seconds and stage wall times of one uncached default job run from `root`."""
    with tempfile.TemporaryDirectory() as out:
        proc = subprocess.run(
            [sys.executable, "-c", JOB, *QUIET, f"out_root={out}", *overrides],
            cwd=root,
            env={**os.environ, "PYTHONPATH": str(root)},
            capture_output=True,
            text=True,
            check=True,
        )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_all(before: Path, repeats: int) -> dict:
    """Median CPU seconds of every variant, the stages' median wall times, and the ratios."""
    variants = {
        "before": (before, []),
        "blocks": (HERE, ["survival.bootstrap.n_boot=0"]),
        "after": (HERE, []),
    }
    for root, overrides in variants.values():
        time_job(root, overrides)
    load_before = load_average()
    runs: dict[str, list[dict]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, (root, overrides) in variants.items():
            runs[name].append(time_job(root, overrides))
    median = {n: statistics.median(r["cpu_s"] for r in rs) for n, rs in runs.items()}
    stages = {
        n: {s: statistics.median(r["stages"].get(s, 0.0) for r in rs) for s in rs[0]["stages"]}
        for n, rs in runs.items()
    }
    ratios = {f"{n}/before": median[n] / median["before"] for n in variants}
    for n in variants:
        print(f"{n:7s} {median[n]:7.2f} CPU s  ÷ before {ratios[f'{n}/before']:.3f}  {stages[n]}")
    return {
        "repeats": repeats,
        "median_cpu_s": median,
        "median_stage_wall_s": stages,
        "ratios": ratios,
        "load": [load_before, load_average()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="checkout before the change")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    result = run_all(args.before.resolve(), args.repeats)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
