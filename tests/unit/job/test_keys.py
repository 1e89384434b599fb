"""Job keys and the completed-job lookup: a key follows contents, a result belongs to one key."""

import hashlib
import os
import shutil
from dataclasses import asdict
from pathlib import Path

from synthetic import write_job

from conftest import SMALL, compose_config, default_sae_dir
from sweep.base.fingerprint import file_digest
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
    own = {k: v for k, v in asdict(plan.method).items() if k != "blocks"}  # null: left out
    assert plan.keyed["compression"] == own
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


def copies(src: Path, *dests: Path) -> None:
    for dest in dests:
        shutil.copytree(src, dest)


def test_model_sae_and_candidate_enter_keys_by_content(tmp_path: Path) -> None:
    """For each local directory input (model checkpoint, SAE, audit candidate): two copies share
    a key with the path left out, and a file changed in place changes it."""
    model_a, model_b = tmp_path / "model_a", tmp_path / "model_b"
    sae_a, sae_b = tmp_path / "sae_a", tmp_path / "sae_b"
    copies(TINY_ASSETS / "lm", model_a, model_b)
    copies(default_sae_dir(), sae_a, sae_b)
    cand_a, cand_b = tmp_path / "cand_a", tmp_path / "cand_b"
    copies(TINY_ASSETS / "lm", cand_a, cand_b)

    def plan(model: Path, sae: Path, cand: Path):
        return plan_job(
            compose_config(
                [
                    *SMALL,
                    f"out_root={tmp_path}",
                    "model.name=hf",
                    f"model.path={model}",
                    "sae.name=local",
                    f"sae.path={sae}",
                    f"+candidate={cand}",
                ]
            )
        )

    base = plan(model_a, sae_a, cand_a)
    assert plan(model_b, sae_b, cand_b).key == base.key
    assert base.keyed["model"]["path"] is None and base.keyed["sae"]["path"] is None
    assert base.keyed["candidate"] is None
    keys = {base.key}
    for changed in (model_b, sae_b, cand_b):
        with open(changed / "cfg.json" if changed == sae_b else changed / "config.json", "a") as f:
            f.write(" ")  # same JSON, other bytes
        keys.add(plan(model_b, sae_b, cand_b).key)
    assert len(keys) == 4


def test_a_file_replaced_under_its_name_gets_a_new_digest(tmp_path: Path) -> None:
    """The digest memo is keyed by size, mtime and inode too: a file replaced by another of the
    same size and mtime (a new inode) is read again."""
    path, other = tmp_path / "x.bin", tmp_path / "y.bin"
    path.write_bytes(b"a" * 64)
    other.write_bytes(b"b" * 64)
    st = path.stat()
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
    before = file_digest(path)
    os.replace(other, path)
    assert path.stat().st_mtime_ns == st.st_mtime_ns and path.stat().st_size == st.st_size
    assert before == hashlib.sha256(b"a" * 64).hexdigest()
    assert file_digest(path) == hashlib.sha256(b"b" * 64).hexdigest()
