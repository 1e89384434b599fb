"""Command line: `python -m analysis [report] SWEEP...` and `python -m analysis features SWEEP`."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from analysis.load.collect import AnalysisError, collect
from analysis.load.contexts import parse_named
from analysis.workers import usable_cores
from sweep.base.shutdown import skip_final_collection

PROG = "qfeat-analysis"
log = logging.getLogger("qfeat.analysis")


def parser() -> argparse.ArgumentParser:
    """The argparse parser with the `report` (default) and `features` subcommands."""
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Figures, tables and a report from "
        "qfeat sweep result files (never re-runs a model).",
    )
    sub = p.add_subparsers(dest="command")
    rep = sub.add_parser("report", help="figures, tables, report.html and report.md (default)")
    rep.add_argument("sweeps", nargs="+", type=Path, help="sweep directories (with jobs/)")
    rep.add_argument("--out", type=Path, help="output folder (default: <first sweep>/report)")
    rep.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples for CIs")
    rep.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    rep.add_argument(
        "--cards", type=int, default=8, help="feature cards of the most damaged per job (8)"
    )
    rep.add_argument(
        "--workers",
        type=int,
        default=usable_cores(),
        help="processes drawing figures and cards (default: this machine's cores, %(default)s)",
    )
    feat = sub.add_parser("features", help="the most damaged features of a cell")
    feat.add_argument("sweeps", nargs="+", type=Path)
    feat.add_argument("--model")
    feat.add_argument("--bits", type=int)
    feat.add_argument("--compression")
    feat.add_argument("--sae", help="SAE hook name, e.g. blocks.2.hook_resid_post")
    feat.add_argument("--worst", type=int, default=20, help="features per job (default 20)")
    feat.add_argument(
        "--contexts", action="store_true", help="also print each feature's top contexts"
    )
    feat.add_argument(
        "--csv",
        nargs="?",
        const="-",
        metavar="PATH",
        help="write CSV to PATH (stdout when no PATH) instead of a table",
    )
    for sp in (rep, feat):
        sp.add_argument(
            "--feature",
            action="append",
            default=[],
            metavar="[HOOK:]INDEX",
            help="a feature to show (repeatable); INDEX alone means that index in every SAE",
        )
        sp.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    return p


def _report(args: argparse.Namespace) -> int:
    from analysis.report.page import write_report

    start = time.perf_counter()
    col = collect(args.sweeps)
    out = args.out or args.sweeps[0] / "report"
    named = parse_named(args.feature)
    page = write_report(col, out, args.n_boot, args.seed, args.cards, named, args.workers)
    log.info("done in %.1fs: open %s", time.perf_counter() - start, page)
    print(page)
    return 0


def _features(args: argparse.Namespace) -> int:
    from analysis.tables.features import contexts_report, format_table, pick, worst_features

    col = collect(args.sweeps)
    chosen = (args.model, args.bits, args.compression, args.sae, args.worst)
    named = parse_named(args.feature)
    frame = worst_features(col, *chosen, named)
    if args.csv == "-":
        frame.to_csv(sys.stdout, index=False)
    elif args.csv:
        frame.to_csv(args.csv, index=False)
        log.info("wrote %d rows to %s", len(frame), args.csv)
    else:
        print(format_table(frame))
    if args.contexts:
        print("\n" + contexts_report(col, pick(col, *chosen, named)))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m analysis` and the qfeat-analysis console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in ("report", "features", "-h", "--help"):
        argv.insert(0, "report")
    args = parser().parse_args(argv)
    skip_final_collection()
    if args.command is None:
        parser().print_help()
        return 2
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return _report(args) if args.command == "report" else _features(args)
    except AnalysisError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
