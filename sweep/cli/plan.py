"""Plan per-module bit-widths that keep the SAE features a target asks for, verified by a job.

qfeat-plan OUT [method=rtn|gptq] [bits=[3,4,8]] [min_survived=F] [min_watched_r=T]
    [max_delta_ppl=P] [targets=[attention,mlp]] [blocks=[0,1,...]] [Hydra overrides ...]

Every part (block × module kind) is compressed alone at each candidate width below the widest
(one real job each: keyed, cached, a rerun skips complete jobs); a greedy search on the
additive estimate of each feature's r raises the part with the best estimated gain per added
bit-weight until the target is met, then a real mixed job verifies it (a miss: raise on the
verified shortfall, verify again). Writes OUT/compression/plan.yaml (`python launch.py
--config-dir OUT compression=plan`), OUT/verified/ and OUT/plan.json; prints the plan against
each uniform width. A target the widest uniform width misses is refused (exit 2). docs/plan.md.
"""

import argparse
import logging
import sys
from pathlib import Path

from sweep.base.errors import QfeatError
from sweep.base.shutdown import skip_final_collection
from sweep.planning.planner import make_plan
from sweep.planning.report import summary_line, table, write_outputs
from sweep.planning.request import parse_request


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: 0 with a verified plan, 2 on bad input or an unreachable target."""
    parser = argparse.ArgumentParser(prog="qfeat-plan", description=__doc__)
    parser.add_argument("out", type=Path, help="directory for the plan and its jobs")
    parser.add_argument("args", nargs="*", help="key=value fields and Hydra overrides")
    args = parser.parse_args(argv)
    skip_final_collection()
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    try:
        plan = make_plan(parse_request(args.out.resolve(), args.args))
        config = write_outputs(plan)
    except QfeatError as err:
        print(f"qfeat plan: error: {err}", file=sys.stderr)
        return 2
    print(table(plan))
    print(summary_line(plan, config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
