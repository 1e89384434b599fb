"""The pass before a launch submits anything (sweep.cli.relaunch): complete jobs answered from
their files, a key shared within the launch run once, configs failing their checks recorded,
everything else submitted; the closing table lists every job."""

import json
from pathlib import Path

from synthetic import write_job

from conftest import SMALL, compose_config
from sweep.cli.relaunch import answer_same_key, triage
from sweep.job.keys import plan_job
from sweep.job.outcomes import COMPLETE, FAILED, SKIPPED, Outcome, outcome_table, write_outcome
from sweep.results.files import OUTCOME_FILE
from sweep.results.summary import parse_summary


def config(tmp_path: Path, *overrides: str):
    return compose_config([*SMALL, f"out_root={tmp_path / 'out'}", *overrides])


def saved(job_dir: Path) -> Outcome:
    return Outcome(**json.loads((job_dir / OUTCOME_FILE).read_text()))


def test_a_complete_job_is_answered_from_its_summary(tmp_path) -> None:
    cfg = config(tmp_path, "bits=3")
    plan = plan_job(cfg)
    done = write_job(tmp_path / "out" / "default", plan.key, bits=3)
    summary = parse_summary(json.loads((done / "summary.json").read_text()))
    job = triage(0, ["bits=3"], tmp_path / "0", lambda: cfg, {})
    assert not job.submit and job.key == plan.key
    outcome = saved(tmp_path / "0")
    assert outcome == job.answer
    assert (outcome.status, outcome.key) == (SKIPPED, plan.key)
    assert outcome.frac_survived == summary.metrics.frac_survived
    assert outcome.delta_ppl == summary.metrics.delta_ppl


def test_a_missing_or_foreign_result_is_submitted(tmp_path) -> None:
    cfg = config(tmp_path, "bits=3")
    assert triage(0, ["bits=3"], tmp_path / "0", lambda: cfg, {}).submit
    other = plan_job(config(tmp_path, "bits=4")).key
    write_job(tmp_path / "out" / "default", plan_job(cfg).key, bits=3)
    moved = tmp_path / "out" / "default" / "jobs" / plan_job(cfg).key / "summary.json"
    record = json.loads(moved.read_text())
    moved.write_text(json.dumps({**record, "key": other}))  # a summary of another key
    assert triage(1, ["bits=3"], tmp_path / "1", lambda: cfg, {}).submit
    assert not (tmp_path / "0" / OUTCOME_FILE).exists()


def test_a_config_failing_its_checks_is_recorded_failed_not_submitted(tmp_path) -> None:
    cfg = config(tmp_path, "bits=1")
    job = triage(4, ["bits=1"], tmp_path / "4", lambda: cfg, {})
    assert not job.submit
    outcome = saved(tmp_path / "4")
    assert (
        outcome.status == FAILED
        and outcome.error == "compression=rtn supports bits in 2..16; got bits=1"
    )


def test_an_unexpected_planning_error_leaves_the_job_to_run(tmp_path) -> None:
    def broken():
        raise RuntimeError("disk went away")

    job = triage(0, [], tmp_path / "0", broken, {})
    assert job.submit and not (tmp_path / "0" / OUTCOME_FILE).exists()


def test_jobs_sharing_a_key_run_once_and_report_the_first(tmp_path) -> None:
    seen: dict = {}
    jobs = [
        triage(
            n,
            [f"bits={b}"],
            tmp_path / str(n),
            lambda b=b: config(tmp_path, "compression=none", f"bits={b}"),
            seen,
        )
        for n, b in enumerate((3, 4, 5))
    ]
    assert [j.submit for j in jobs] == [True, False, False]
    assert jobs[1].same_as is jobs[0] and jobs[2].same_as is jobs[0]
    # the first one ran and reported
    first = Outcome("0", ["bits=3"], COMPLETE, jobs[0].key, 0.9, delta_ppl=0.5)
    write_outcome(jobs[0].job_dir, first)
    second = answer_same_key(jobs[1])
    assert second == saved(tmp_path / "1")
    assert (second.status, second.same_as, second.frac_survived, second.delta_ppl) == (
        SKIPPED,
        "0",
        0.9,
        0.5,
    )
    table = outcome_table([saved(tmp_path / "0"), second])
    assert table.splitlines()[2].endswith("+0.500  (same key as job 0)")


def test_a_shared_key_whose_first_job_failed_is_failed_too(tmp_path) -> None:
    seen: dict = {}
    first, second = (
        triage(
            n, [f"bits={n}"], tmp_path / str(n), lambda: config(tmp_path, "compression=none"), seen
        )
        for n in (0, 1)
    )
    write_outcome(first.job_dir, Outcome("0", [], FAILED, first.key, error="killed"))
    outcome = answer_same_key(second)
    assert outcome.status == FAILED and outcome.error == "same key as job 0, which did not finish"
    assert "same key as job 0, which did not finish" in outcome_table([outcome])
