"""What a job's extras cost: whole uncached jobs with contexts, SAE fit and fidelity on ÷ off.

python -m benchmarks.extras_cost [--repeats 3] [--json benchmarks/extras_cost.json] [OVERRIDE ...]

Each variant is the default job (the embedded model and SAE, RTN 4-bit) composed from the
shipped config plus OVERRIDEs, run by `sweep.job.run` into a fresh directory with no reference
cache, so every run computes its FP reference and its compressed pass. The baseline turns every
extra off (`eval.contexts_k=0 eval.sae_fit_sequences=0 fidelity.max_features=0`); each other
variant turns one extra back on at its shipped default, and `all` is the shipped default job.
After one warm-up job, variants are interleaved `--repeats` times and each takes its median,
so the ratios come from one run under the same load.
"""

import argparse
import json
import logging
import statistics
import tempfile
import time
from pathlib import Path

from sweep.compose import compose_config
from sweep.job import run

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
    """Wall time of one uncached job with the extras in `off` turned off."""
    with tempfile.TemporaryDirectory() as out:
        cfg = compose_config(
            [*QUIET, *overrides, f"out_root={out}", *(f"{k}={OFF[k]}" for k in off)]
        )
        start = time.perf_counter()
        run(cfg)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/extras_cost.json"))
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every job")
    args = parser.parse_args()
    logging.getLogger("qfeat").setLevel(logging.WARNING)
    logging.getLogger("sweep").setLevel(logging.WARNING)
    time_job(args.overrides, VARIANTS["all"])
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(args.repeats):
        for name, off in VARIANTS.items():
            times[name].append(time_job(args.overrides, off))
    median = {name: statistics.median(ts) for name, ts in times.items()}
    ratios = {name: median[name] / median["baseline"] for name in VARIANTS}
    for name in VARIANTS:
        print(f"{name:9s} {median[name]:7.2f}s  ÷ baseline {ratios[name]:.3f}")
    report = {
        "benchmark": "extras_cost",
        "overrides": args.overrides,
        "repeats": args.repeats,
        "median_s": median,
        "ratio_to_baseline": ratios,
    }
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
