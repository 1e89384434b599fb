"""Peak memory of a job's measurement at N and 4N tokens: it must not grow with tokens.

python -m benchmarks.memory [--shape pythia-70m] [--d-sae 32768] [--n-seq 16]

Each size runs in a fresh subprocess (model loaded, then the FP reference pass and one
compressed measurement pass); the peak resident set size (ru_maxrss) is reported with the 4N/N
ratio (target ≤ 1.10). What may grow with tokens: the tokens themselves and the sparse FP
reference (O(tokens × L0), not O(tokens × d_sae)).
"""

import argparse
import resource
import subprocess
import sys

import torch


def child(shape: str, d_sae: int, n_seq: int) -> None:
    """Measure once and print the peak RSS growth in MiB."""
    from benchmarks.common import random_neox, random_sae
    from benchmarks.overhead import PROCESSING
    from sweep.hooked import HookedLM
    from sweep.measure import compute_reference, measure

    hf = random_neox(shape)
    path = "/tmp/qfeat-bench-model"
    hf.save_pretrained(path)
    model = HookedLM.wrap(hf, PROCESSING)
    hook = f"blocks.{hf.config.num_hidden_layers // 2}.hook_resid_post"
    saes = {hook: random_sae(hf.config.hidden_size, d_sae, hook)}
    tokens = torch.randint(1, hf.config.vocab_size, (n_seq, 128))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    reference = compute_reference(model, saes, tokens, 8, 1, 128, False)
    measure(reference, {"q": model}, saes, tokens, 8, 1, False)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"{after / 1024:.1f} {(after - before) / 1024:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="pythia-70m")
    parser.add_argument("--d-sae", type=int, default=32768)
    parser.add_argument("--n-seq", type=int, default=16)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.shape, args.d_sae, args.n_seq)
        return
    peaks = {}
    for n in (args.n_seq, 4 * args.n_seq):
        cmd = [
            sys.executable,
            "-m",
            "benchmarks.memory",
            "--child",
            "--shape",
            args.shape,
            "--d-sae",
            str(args.d_sae),
            "--n-seq",
            str(n),
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()
        peaks[n] = float(out[-2])
        growth = f"growth during reference + measurement {out[-1]} MiB"
        print(f"{n} sequences: peak RSS {out[-2]} MiB ({growth})")
    ratio = peaks[4 * args.n_seq] / peaks[args.n_seq]
    print(f"peak RSS 4N / N: {ratio:.3f}")


if __name__ == "__main__":
    main()
