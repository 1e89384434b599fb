"""qfeat-plan end to end on the embedded model: the verified plan equals a direct
compression=mixed job with the same per-module bits, a rerun runs no job, launch.py takes the
plan file, its export reproduces the planned weights and audits to the verified r, and an
unreachable target is one line, exit 2."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from transformers import AutoModelForCausalLM
from transformers.utils.quantization_config import CompressedTensorsConfig

from conftest import FAST, ROOT, SUBPROCESS_TIMEOUT_S, compose_config, default_sae_dir, launch
from sweep.base.paths import TINY_ASSETS
from sweep.cli.audit import main as audit_main
from sweep.cli.export import main as export_main
from sweep.cli.plan import main as plan_main
from sweep.compressors.rtn import rtn
from sweep.job.keys import plan_job
from sweep.job.run import run
from sweep.results.files import FEATURES_FILE

JOB = [*FAST, "survival.bootstrap.n_boot=0"]
PLAN = ["targets=[mlp]", "blocks=[1,2]", "bits=[2,3,8]", "min_survived=0.95"]
KIND_MODULES = {"mlp_in": "mlp.dense_h_to_4h", "mlp_out": "mlp.dense_4h_to_h"}


@pytest.fixture(scope="module")
def planned(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("plan")
    assert plan_main([str(out), *PLAN, *JOB]) == 0
    return out


def plan_doc(out: Path) -> dict:
    return json.loads((out / "plan.json").read_text())


def active_r(features: Path) -> pd.Series:
    frame = pd.read_parquet(features)
    return frame[frame["active"]].set_index(["sae", "feature"])["r"]


def audit_gap(ckpt: Path, planned: Path, job: list[str], audit_out: Path) -> float:
    """max |r| difference between qfeat-audit of `ckpt` and the plan's verified job."""
    fields = [f"base={TINY_ASSETS / 'lm'}", f"candidate={ckpt}", f"sae={default_sae_dir()}"]
    assert audit_main([*fields, *job, f"out_root={audit_out}"]) == 0
    (features,) = (audit_out / "audit" / "jobs").glob(f"*/{FEATURES_FILE}")
    audited, verified = active_r(features), active_r(planned / "verified" / FEATURES_FILE)
    assert audited.index.equals(verified.index) and len(audited) > 0
    return float((audited - verified).abs().max())


def planned_bits(out: Path) -> dict[str, int]:
    """Module name -> planned width, from plan.json's parts."""
    return {
        f"gpt_neox.layers.{p['block']}.{KIND_MODULES[p['kind']]}": p["bits"]
        for p in plan_doc(out)["parts"]
    }


def test_the_verified_plan_equals_a_direct_mixed_job(planned: Path, tmp_path: Path) -> None:
    doc = plan_doc(planned)
    assert doc["plan"]["meets_target"] and doc["plan"]["pct_survived"] >= 95.0
    parts = yaml.safe_load((planned / "compression" / "plan.yaml").read_text())["parts"]
    text = ",".join(
        f"{{targets:{p['targets']},blocks:{p['blocks']},bits:{p['bits']}}}".replace("'", "")
        for p in parts
    )
    cfg = compose_config([*JOB, "compression=mixed", f"compression.parts=[{text}]",
                          f"out_root={tmp_path}"])  # fmt: skip
    summary = run(cfg).summary
    direct = active_r(plan_job(cfg).out / FEATURES_FILE)
    verified = active_r(planned / "verified" / FEATURES_FILE)
    assert direct.index.equals(verified.index)
    assert (direct - verified).abs().max() <= 1e-12
    assert 100 * summary.metrics.frac_survived == pytest.approx(doc["plan"]["pct_survived"])
    # bits per weight over the selected matrices, by hand from the parts' sizes
    sizes = {(p["block"], p["kind"]): p["n_weights"] for p in doc["parts"]}
    by_hand = sum(p["bits"] * sizes[p["block"], p["kind"]] for p in doc["parts"])
    assert doc["plan"]["bits_per_weight"] == pytest.approx(by_hand / sum(sizes.values()))


def test_a_rerun_answers_every_job_from_its_files(planned: Path, capsys) -> None:
    before = plan_doc(planned)
    capsys.readouterr()
    assert plan_main([str(planned), *PLAN, *JOB]) == 0
    progress = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[")]
    assert progress and all("(cached," in line for line in progress)
    assert plan_doc(planned)["plan"] == before["plan"]


def test_launch_takes_the_plan_file_and_finds_the_verified_job(planned: Path) -> None:
    proc = launch("--config-dir", str(planned), "compression=plan", f"out_root={planned}",
                  "sweep_name=plan", *JOB)  # fmt: skip
    key = plan_doc(planned)["plan"]["job_key"]
    assert f"skipped: complete result for key {key}" in proc.stdout + proc.stderr


def test_a_plan_file_for_another_model_is_one_line_and_exit_2(planned: Path, tmp_path) -> None:
    node = yaml.safe_load((planned / "compression" / "plan.yaml").read_text())
    (tmp_path / "compression").mkdir()
    (tmp_path / "compression" / "plan.yaml").write_text(
        yaml.safe_dump({**node, "for_model": "f" * 64})
    )
    cmd = [sys.executable, "launch.py", "--config-dir", str(tmp_path), "compression=plan",
           f"out_root={tmp_path}", *JOB]  # fmt: skip
    proc = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    output = proc.stdout + proc.stderr  # Hydra's console log handler
    errors = [line for line in output.splitlines() if "error" in line]
    assert len(errors) == 1, output[-2000:]
    assert "ffffffffffffffff… is a plan for another model" in errors[0]
    assert not (tmp_path / "default" / "jobs").exists()


def test_export_reproduces_the_planned_weights_and_audits_to_the_verified_r(
    planned: Path, tmp_path: Path
) -> None:
    ckpt = tmp_path / "ckpt"
    assert export_main([str(ckpt), "--config-dir", str(planned), "compression=plan", *JOB]) == 0
    quant = json.loads((ckpt / "config.json").read_text())["quantization_config"]
    assert quant["quant_method"] == "compressed-tensors" and quant["format"] == "pack-quantized"
    widths = sorted(g["weights"]["num_bits"] for g in quant["config_groups"].values())
    planned_parts = yaml.safe_load((planned / "compression" / "plan.yaml").read_text())["parts"]
    assert widths == sorted(p["bits"] for p in planned_parts)
    fp = AutoModelForCausalLM.from_pretrained(TINY_ASSETS / "lm").state_dict()
    dequantized = CompressedTensorsConfig(dequantize=True)  # the library's own decompression
    exported = AutoModelForCausalLM.from_pretrained(ckpt, quantization_config=dequantized)
    exported = exported.state_dict()
    bits = planned_bits(planned)
    for key, value in fp.items():  # the export adds only its scales and shapes beside them
        name = key.removesuffix(".weight")
        expected = rtn(value, bits[name]) if name in bits and key.endswith(".weight") else value
        assert torch.equal(exported[key], expected), key
    assert {k.rsplit(".", 1)[1] for k in set(exported) - set(fp)} <= {
        "weight_scale",
        "weight_shape",
    }
    assert audit_gap(ckpt, planned, JOB, tmp_path / "audit") <= 1e-12


def test_an_unreachable_target_is_one_line_and_exit_2(tmp_path: Path, capsys) -> None:
    args = ["targets=[mlp_out]", "blocks=[1]", "bits=[2,3]", "max_delta_ppl=-1"]
    assert plan_main([str(tmp_path), *args, *JOB]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert re.match(r"qfeat plan: error: the target is out of reach of bits=\[2, 3\]", err)


def test_a_gptq_plan_exports_llm_compressors_checkpoint_and_audits_to_the_verified_r(
    tmp_path: Path,
) -> None:
    """GPTQ: one llm-compressor pass with a scheme per part; the export is its compressed save
    with recipe.yaml (a config group per part with its num_bits)."""
    job = [*JOB, "calibration_sequences=4"]
    out = tmp_path / "plan"
    plan = ["method=gptq", "targets=[mlp]", "blocks=[1,2]", "bits=[3,8]", "min_survived=0.95"]
    assert plan_main([str(out), *plan, *job]) == 0
    parts = yaml.safe_load((out / "compression" / "plan.yaml").read_text())["parts"]
    ckpt = tmp_path / "ckpt"
    assert export_main([str(ckpt), "--config-dir", str(out), "compression=plan", *job]) == 0
    recipe = (ckpt / "recipe.yaml").read_text()
    assert "GPTQModifier" in recipe
    assert sorted(int(b) for b in re.findall(r"num_bits: (\d+)", recipe)) == sorted(
        p["bits"] for p in parts
    )
    assert audit_gap(ckpt, out, job, tmp_path / "audit") <= 1e-6  # as test_export_audit.py


def test_a_watched_feature_target_is_met_by_the_verified_plan(planned: Path, tmp_path) -> None:
    """Watch the three features 2-bit RTN damages most among those 8 bits leaves at r >= 0.99;
    the verified plan keeps each at r >= 0.9 (read back from its features.parquet)."""
    rows = {u["name"]: Path(u["job_dir"]) / FEATURES_FILE for u in plan_doc(planned)["uniform"]}
    widest, narrowest = active_r(rows["uniform 8 bits"]), active_r(rows["uniform 2 bits"])
    fragile = narrowest[widest >= 0.99].sort_values().index[:3]
    watch = sorted(int(f) for _, f in fragile)
    out = tmp_path / "watched"
    args = ["targets=[mlp]", "blocks=[1,2]", "bits=[2,3,8]", "min_watched_r=0.9"]
    assert plan_main([str(out), *args, f"survival.watch={watch}", *JOB]) == 0
    verified = active_r(out / "verified" / FEATURES_FILE)
    watched_r = verified[verified.index.get_level_values("feature").isin(watch)]
    assert len(watched_r) == len(watch) and watched_r.min() >= 0.9
    assert plan_doc(out)["plan"]["watched_min_r"] == pytest.approx(watched_r.min(), abs=0)
