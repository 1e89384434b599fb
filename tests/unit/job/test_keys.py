"""Job keys and the completed-job lookup: a key follows contents, a result belongs to one key."""

import shutil
from dataclasses import asdict
from pathlib import Path

from synthetic import write_job

from conftest import SMALL, compose_config
from sweep.base.paths import TINY_ASSETS
from sweep.job.keys import completed, plan_job
from sweep.results.files import FEATURES_FILE


def with_text(tmp_path: Path, text_file: Path):
    """The small default job reading a local text file."""
    return compose_config([*SMALL, f"out_root={tmp_path}", "data=local", f"data.path={text_file}"])


def test_key_follows_a_local_inputs_content_not_its_path(tmp_path: Path) -> None:
    """Two copies of one text share a key; rewriting one in place changes it. The key holds the
    method's own fields for `compression` and the data options, path left out."""
    text = (TINY_ASSETS / "heldout.txt").read_text(encoding="utf-8")
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text(text, encoding="utf-8")
    b.write_text(text, encoding="utf-8")
    plan = plan_job(with_text(tmp_path, a))
    assert plan_job(with_text(tmp_path, b)).key == plan.key
    assert plan.keyed["data"]["path"] is None and plan.keyed["data"]["name"] == "local"
    assert plan.keyed["inputs"]["data"] is not None
    assert plan.keyed["compression"] == asdict(plan.method)
    b.write_text(text + "\nrewritten", encoding="utf-8")
    assert plan_job(with_text(tmp_path, b)).key != plan.key


def test_a_result_counts_as_complete_only_with_both_files_and_its_key(small_cfg) -> None:
    plan = plan_job(small_cfg)
    sweep = plan.out.parent.parent
    assert completed(plan) is None
    write_job(sweep, plan.key)
    assert completed(plan).key == plan.key
    (plan.out / FEATURES_FILE).unlink()
    assert completed(plan) is None  # summary without features.parquet
    shutil.rmtree(plan.out)
    shutil.move(write_job(sweep, "0" * 16), plan.out)
    assert completed(plan) is None  # another key's result in this key's directory
