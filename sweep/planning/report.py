"""What qfeat-plan leaves in OUT: the plan as a config file (compression=plan), the verified
job's result files, plan.json, and the plan-vs-uniform table it prints."""

import shutil
from pathlib import Path

from sweep.base.atomic import write_json_atomic
from sweep.planning.parts import PLAN_NAME, mixed_parts, write_plan_config
from sweep.planning.planner import Plan, Row
from sweep.results.files import FEATURES_FILE, SUMMARY_FILE

VERIFIED_DIR = "verified"
PLAN_JSON = "plan.json"


def _row(row: Row) -> dict:
    o = row.outcome
    return {
        "name": row.name,
        "bits_per_weight": row.bits_per_weight,
        "pct_survived": 100 * o.frac_survived,
        "watched_min_r": o.watched_min_r,
        "delta_ppl": o.delta_ppl,
        "meets_target": row.met,
        "job_key": row.job.key,
        "job_dir": str(row.job.out),
    }


def table(plan: Plan) -> str:
    """The plan against each uniform width: % survived, watched min r, ΔPPL, bits per weight;
    the lowest uniform width that meets the target is marked."""
    lowest = next((u for u in plan.uniform if u.met), None)
    lines = [
        "| assignment | bits/weight | % survived | watched min r | ΔPPL | meets target |",
        "|---|---|---|---|---|---|",
    ]
    for row in [plan.plan, *plan.uniform]:
        watched = row.outcome.watched_min_r
        mark = " (lowest uniform meeting it)" if row is lowest else ""
        lines.append(
            f"| {row.name}{mark} | {row.bits_per_weight:.3f} | "
            f"{100 * row.outcome.frac_survived:.1f} | "
            f"{'–' if watched is None else f'{watched:.4f}'} | {row.outcome.delta_ppl:+.4f} | "
            f"{'yes' if row.met else 'no'} |"
        )
    return "\n".join(lines)


def write_outputs(plan: Plan) -> Path:
    """OUT/compression/plan.yaml, OUT/verified/ (the verified job's summary and features),
    OUT/plan.json; returns the config file's path."""
    out = plan.request.out
    parts = mixed_parts(plan.parts, plan.plan.bits)
    config = write_plan_config(out, plan.method, parts, plan.model)
    verified = out / VERIFIED_DIR
    verified.mkdir(parents=True, exist_ok=True)
    for name in (SUMMARY_FILE, FEATURES_FILE):
        shutil.copyfile(plan.plan.job.out / name, verified / name)
    t = plan.request.target
    write_json_atomic(
        out / PLAN_JSON,
        {
            "config": str(config),
            "use": f"python launch.py --config-dir {out} compression={PLAN_NAME}",
            "method": plan.request.method,
            "candidate_bits": list(plan.request.bits),
            "target": {
                "min_survived": t.min_survived,
                "min_watched_r": t.min_watched_r,
                "max_delta_ppl": t.max_delta_ppl,
                "survived_r": t.survived_r,
            },
            "for_model": plan.model,
            "parts": [
                {"block": p.block, "kind": p.kind, "n_weights": p.n_weights, "bits": b}
                for p, b in zip(plan.parts, plan.plan.bits, strict=True)
            ],
            "plan": _row(plan.plan),
            "verify_rounds": [_row(r) for r in plan.rounds],
            "uniform": [_row(u) for u in plan.uniform],
            "attribution": attribution(plan),
        },
    )
    return config


def attribution(plan: Plan) -> list[dict]:
    """Each part alone at each width below the widest: mean damage and ΔPPL (plan.json)."""
    p = plan.problem
    return [
        {
            "block": part.block,
            "kind": part.kind,
            "bits": p.bits[j],
            "mean_damage": float(p.damage[i, j].mean()),
            "max_damage": float(p.damage[i, j].max()),
            "delta_ppl": float(p.delta_ppl[i, j]),
        }
        for i, part in enumerate(plan.parts)
        for j in range(len(p.bits) - 1)
    ]


def summary_line(plan: Plan, config: Path) -> str:
    """The closing lines: where the plan is and how to use it."""
    return (
        f"plan: {plan.plan.bits_per_weight:.3f} bits per weight "
        f"({len(plan.rounds)} verify round(s)); {config}\n"
        f"use it: python launch.py --config-dir {plan.request.out} compression={PLAN_NAME}\n"
        f"export it: qfeat-export CKPT_DIR --config-dir {plan.request.out} "
        f"compression={PLAN_NAME} [the same job overrides]\n"
        f"details: {plan.request.out / PLAN_JSON}"
    )
