"""The README's first command, install aside, timed as a new user runs it: the sweep (wandb at
its default, then disabled) and the report, in a fresh `git archive` of each commit (nothing
cached: the first job computes the FP reference). Commits alternate round by round, so a
noisy machine shares its noise between them; one untimed round warms the page cache.

python -m benchmarks.first_command [COMMIT ...] [--rounds 3] [--json PATH]

Prints and writes (JSON) each command's median and range per commit.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SWEEP = [sys.executable, "launch.py", "-m", "bits=4,5,6,7,8"]
# Each group runs in its own fresh checkout, its commands in order.
GROUPS = [
    {"sweep": SWEEP, "report": [sys.executable, "-m", "analysis", "outputs/default"]},
    {"sweep wandb.mode=disabled": [*SWEEP, "wandb.mode=disabled"]},
]
NAMES = [name for group in GROUPS for name in group]


def checkout(commit: str, into: Path) -> Path:
    """A fresh `git archive` of `commit` under `into`: the tree only, no outputs or caches."""
    into.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", commit], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def one_round(commit: str, scratch: Path) -> dict[str, float]:
    """Wall seconds of each command, each group in a fresh checkout of `commit`."""
    walls = {}
    for group in GROUPS:
        tree = checkout(commit, Path(tempfile.mkdtemp(dir=scratch)) / "tree")
        for name, command in group.items():
            start = time.perf_counter()
            done = subprocess.run(command, cwd=tree, capture_output=True, text=True)
            walls[name] = time.perf_counter() - start
            if done.returncode != 0:
                raise SystemExit(f"{commit}: {name} failed:\n{done.stderr[-2000:]}")
    return walls


def main(argv: list[str] | None = None) -> int:
    """Time the commits round by round; print and write the medians."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.first_command")
    parser.add_argument("commits", nargs="*", default=["HEAD"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    runs: dict[str, list[dict[str, float]]] = {c: [] for c in args.commits}
    with tempfile.TemporaryDirectory(prefix="qfeat-first-") as scratch:
        one_round(args.commits[0], Path(scratch))  # warm-up, not timed
        for i in range(args.rounds):
            for commit in args.commits:
                runs[commit].append(one_round(commit, Path(scratch)))
                print(f"round {i + 1} {commit}: {runs[commit][-1]}", file=sys.stderr)
    result = {
        commit: {
            name: {
                "median_s": statistics.median(r[name] for r in rounds),
                "min_s": min(r[name] for r in rounds),
                "max_s": max(r[name] for r in rounds),
            }
            for name in NAMES
        }
        for commit, rounds in runs.items()
    }
    for commit, medians in result.items():
        for name, s in medians.items():
            spread = f"{s['min_s']:.1f}–{s['max_s']:.1f}"
            print(f"{commit:>12}  {name:<26} {s['median_s']:6.1f} s  ({spread})")
    if args.json:
        args.json.write_text(json.dumps({"rounds": args.rounds, "commits": result}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
