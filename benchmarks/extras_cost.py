"""What a job's extras cost: whole uncached jobs with contexts, SAE fit and fidelity on ÷ off.

python -m benchmarks.extras_cost [--repeats 3] [--json PATH] [OVERRIDE ...]

Each variant is the default job (the embedded model and SAE, RTN 4-bit) composed from the
shipped config plus OVERRIDEs, run by `sweep.job.run.run` into a fresh directory with no reference
cache, so every run computes its FP reference and its compressed pass. The baseline turns every
extra off (`eval.contexts_k=0 eval.sae_fit_sequences=0 fidelity.max_features=0`); each other
variant turns one extra back on at its shipped default, and `all` is the shipped default job.
After one warm-up job, variants are interleaved `--repeats` times and each takes its median
CPU time (this process's work, not time spent waiting for a core on a shared machine), so the
ratios come from one run under the same load.
"""

import argparse
import json
import logging
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.common import load_average
from sweep.config.compose import compose_config
from sweep.job.run import run

OFF = {"eval.contexts_k": "0", "eval.sae_fit_sequences": "0", "fidelity.max_features": "0"}
# Variant name -> the extras it leaves off (every other extra is at its shipped default).
VARIANTS = {
    "baseline": tuple(OFF),
    "contexts": ("eval.sae_fit_sequences", "fidelity.max_features"),
    "sae_fit": ("eval.contexts_k", "fidelity.max_features"),
    "fidelity": ("eval.contexts_k", "eval.sae_fit_sequences"),
    "all": (),
}
QUIET = ["wandb.mode=disabled", "runtime.progress=false", "reference_cache=null"]


def time_job(overrides: list[str], off: tuple[str, ...]) -> float:
    """CPU seconds of one uncached job with the extras in `off` turned off."""
    with tempfile.TemporaryDirectory() as out:
        cfg = compose_config(
            [*QUIET, *overrides, f"out_root={out}", *(f"{k}={OFF[k]}" for k in off)]
        )
        start = time.process_time()
        run(cfg)
        return time.process_time() - start


def run_all(overrides: list[str], repeats: int) -> dict:
    """Median seconds of every variant and its ratio to the baseline."""
    logging.getLogger("qfeat").setLevel(logging.WARNING)
    logging.getLogger("sweep").setLevel(logging.WARNING)
    time_job(overrides, VARIANTS["all"])
    load_before = load_average()
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(repeats):
        for name, off in VARIANTS.items():
            times[name].append(time_job(overrides, off))
    median = {name: statistics.median(ts) for name, ts in times.items()}
    ratios = {f"{name}/baseline": median[name] / median["baseline"] for name in VARIANTS}
    for name in VARIANTS:
        print(f"{name:9s} {median[name]:7.2f}s  ÷ baseline {ratios[f'{name}/baseline']:.3f}")
    return {
        "overrides": overrides,
        "repeats": repeats,
        "median_cpu_s": median,
        "ratios": ratios,
        "load": [load_before, load_average()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every job")
    args = parser.parse_args()
    result = run_all(args.overrides, args.repeats)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
