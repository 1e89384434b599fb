"""Every benchmark in one run, written to one JSON file that `benchmarks.compare` reads.

python -m benchmarks.report [--json benchmarks/results.json] [--threads N] [--quick]

Runs, in this order: `benchmarks.passes` (each pass ÷ its floor, jobs ÷ bare forwards and the
sliding-window cost, for every model shape × SAE family × width), `benchmarks.sweep_vs_naive`
(5-bit sweep, target ≥ 3×), `benchmarks.memory` (peak RSS at N and 4N tokens) and
`benchmarks.extras_cost` (whole default jobs, extras on ÷ off). Each result carries the load
averages measured around it; the file also records the threads, the git commit and versions.
`--quick` shrinks every benchmark (fewer tokens, one repeat) to check the harness itself.
"""

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from benchmarks import extras_cost, memory, passes, sweep_vs_naive
from benchmarks.common import load_average
from sweep.base.provenance import git_commit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results.json"))
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    start, load_start = time.perf_counter(), load_average()
    repeats = 1 if args.quick else 3
    results = {
        "passes": passes.run(
            list(passes.CONFIGS), 8 if args.quick else None, 1 if args.quick else 5
        ),
        "sweep_vs_naive": sweep_vs_naive.run("pythia-70m", 32768, 8 if args.quick else 16, repeats),
        "memory": memory.run("pythia-70m", 32768, 4 if args.quick else 16),
        "extras_cost": extras_cost.run_all(["data.n_sequences=32"] if args.quick else [], repeats),
    }
    report = {
        "meta": {
            "commit": git_commit(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "cpu_count": len(__import__("os").sched_getaffinity(0)),
            "load": [load_start, load_average()],
            "wall_s": time.perf_counter() - start,
            "quick": args.quick,
        },
        **results,
    }
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
