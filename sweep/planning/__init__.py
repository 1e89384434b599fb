"""qfeat-plan: per-module bit-widths that keep the features a target asks for (docs/plan.md).

request (the arguments) -> parts (block × module kind, sizes) -> jobs (single-part and
uniform jobs through the job function) -> search (pure: additive estimate, greedy) ->
planner (verify, raise on a miss) -> report (plan.yaml, plan.json, the table).
"""
