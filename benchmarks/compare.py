"""Old vs new: every ratio of two `benchmarks.report` files side by side.

python -m benchmarks.compare OLD.json NEW.json
"""

import argparse
import json
from pathlib import Path


def ratios(report: dict) -> dict[str, float]:
    """Flat {benchmark/config/ratio: value} of a report (passes nest one level deeper)."""
    flat = {}
    for bench, result in report.items():
        if bench == "meta":
            continue
        nested = result if bench == "passes" else {"": result}
        for config, res in nested.items():
            for name, value in res.get("ratios", {}).items():
                flat["/".join(p for p in (bench, config, name) if p)] = value
        if "peak_rss_mib" in result:
            for size, mib in result["peak_rss_mib"].items():
                flat[f"{bench}/peak_rss_MiB@{size}"] = mib
    return flat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    args = parser.parse_args()
    old, new = (json.loads(p.read_text()) for p in (args.old, args.new))
    for label, report in (("old", old), ("new", new)):
        meta = report.get("meta", {})
        print(
            f"{label}: commit {meta.get('commit')}, threads {meta.get('threads')}, "
            f"load {meta.get('load')}"
        )
    a, b = ratios(old), ratios(new)
    width = max(map(len, a | b))
    print(f"{'':{width}}  {'old':>9}  {'new':>9}  {'new/old':>8}")
    for key in list(a) + [k for k in b if k not in a]:
        x, y = a.get(key), b.get(key)
        change = f"{y / x:8.3f}" if x and y else f"{'':8}"
        fmt = lambda v: f"{v:9.3f}" if v is not None else f"{'—':>9}"  # noqa: E731
        print(f"{key:{width}}  {fmt(x)}  {fmt(y)}  {change}")


if __name__ == "__main__":
    main()
