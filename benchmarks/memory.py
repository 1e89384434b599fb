"""Peak memory of a job's measurement at N and 4N tokens: it must not grow with tokens.

python -m benchmarks.memory [--shape pythia-70m] [--d-sae 32768] [--n-seq 16] [--json PATH]

Each size runs in a fresh subprocess: models and SAE are set up, the kernel's peak-RSS mark is
reset (/proc/self/clear_refs), then the FP reference pass and one compressed measurement pass
with top-16 contexts run; their peak resident set size (VmHWM) is reported with the 4N/N ratio
(target ≤ 1.10), beside the resident size before the passes. What may grow with tokens: the
tokens themselves and the sparse FP reference (O(tokens × L0), not O(tokens × d_sae)).
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

from benchmarks.common import load_average


def status_mib(field: str) -> float:
    """A memory field of /proc/self/status (VmRSS, VmHWM) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def child(shape: str, d_sae: int, n_seq: int) -> None:
    """Measure once; print the peak RSS of the passes and the RSS before them, in MiB."""
    from benchmarks.common import (
        PROCESSING,
        calibrated_sae,
        hook_of,
        random_neox,
        random_tokens,
        rtn_copy,
    )
    from sweep.inputs.hooked import HookedLM
    from sweep.passes.measure import measure
    from sweep.passes.reference import compute_reference

    hf = random_neox(shape)
    fp, q = HookedLM.wrap(hf, PROCESSING), rtn_copy(hf, 4)
    hook = hook_of(hf)
    saes = {hook: calibrated_sae("relu", fp, hook, d_sae, 64)}
    tokens = random_tokens(n_seq, hf.config.vocab_size)
    before = status_mib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # peak RSS mark := current RSS
    reference = compute_reference(fp, saes, tokens, 8, 1, 128, False)
    measure(reference, {"q": q}, saes, tokens, 8, 1, False, 16)
    print(f"{status_mib('VmHWM'):.1f} {before:.1f}")


def run(shape: str, d_sae: int, n_seq: int) -> dict:
    """Peak RSS (MiB) at n_seq and 4 × n_seq sequences, each in its own process."""
    peaks, before = {}, {}
    for n in (n_seq, 4 * n_seq):
        cmd = [sys.executable, "-m", "benchmarks.memory", "--child", "--shape", shape]
        cmd += ["--d-sae", str(d_sae), "--n-seq", str(n)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()
        peaks[n], before[n] = float(out[-2]), float(out[-1])
        print(f"{n} sequences: peak RSS of the passes {peaks[n]:.1f} MiB ({before[n]:.1f} before)")
    ratio = peaks[4 * n_seq] / peaks[n_seq]
    print(f"peak RSS 4N / N: {ratio:.3f}")
    return {
        "shape": shape,
        "d_sae": d_sae,
        "peak_rss_mib": {"N": peaks[n_seq], "4N": peaks[4 * n_seq]},
        "rss_before_mib": {"N": before[n_seq], "4N": before[4 * n_seq]},
        "tokens": {"N": n_seq * 128, "4N": 4 * n_seq * 128},
        "ratios": {"peak_rss_4N/N": ratio},
        "load": load_average(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="pythia-70m")
    parser.add_argument("--d-sae", type=int, default=32768)
    parser.add_argument("--n-seq", type=int, default=16)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.shape, args.d_sae, args.n_seq)
        return
    result = run(args.shape, args.d_sae, args.n_seq)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
