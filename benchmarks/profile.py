"""Where a measurement pass spends its time: torch.profiler's top operators, self time.

python -m benchmarks.profile [--config pythia-relu-32k] [--n-seq N] [--rows 15]

Profiles one compressed measurement pass and one FP reference pass of a `benchmarks.passes`
configuration after a warm-up of each, and prints their operators by self CPU time.
"""

import argparse

from torch.profiler import ProfilerActivity, profile

from benchmarks.common import load_average
from benchmarks.passes import CONFIGS, setup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="pythia-relu-32k", choices=list(CONFIGS))
    parser.add_argument("--n-seq", type=int, default=None)
    parser.add_argument("--rows", type=int, default=15)
    args = parser.parse_args()
    b = setup(args.config, args.n_seq)
    for name, fn in (("compressed pass", b.pass_q), ("FP reference pass", b.pass_fp)):
        fn()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            fn()
        print(f"{name} ({args.config}, {b.tokens.numel()} tokens), load {load_average()}")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()
