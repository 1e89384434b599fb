"""qfeat-plan's bad input: each is one line and exit 2 before any job runs; a plan file for
another model is refused in one line wherever it is used."""

import re

import pytest
from transformers import AutoConfig

from conftest import FAST, compose_config
from sweep.base.errors import QfeatError
from sweep.cli.plan import main
from sweep.config.locations import model_identity, model_path
from sweep.job.keys import plan_job
from sweep.planning.parts import mixed_overrides, mixed_parts, select_parts
from sweep.planning.request import parse_request


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["min_survived=0.9", "method=awq"], r"method=awq; a plan takes \['gptq', 'rtn'\]"),
        (["min_survived=0.9", "bits=[4]"], r"bits=\[4\]: give two or more widths"),
        (["min_survived=0.9", "method=gptq", "bits=[4,12]"], "give two or more widths gptq"),
        (["min_survived=0.9", "bits=[3,x]"], "give integers"),
        (["bits=[3,4]"], "give a target"),
        (["min_survived=1.5"], r"min_survived=1.5 must be a number in \[0.0, 1.0\]"),
        (["min_survived=0.9", "targets=[mlp_x]"], r"plan.targets=\['mlp_x'\]"),
        (["min_survived=0.9", "blocks=[9]"], r"blocks \[9\] select nothing: the model has 4"),
        (["min_watched_r=0.9"], "min_watched_r needs watched features"),
        (["min_survived=0.9", "model=nope"], "bad configuration"),
        (["min_survived=0.9", "+compression.options={bits:3}"], r"options sets \['bits'\]"),
    ],
)
def test_bad_input_is_one_line_and_exit_2_before_any_job(args, message, tmp_path, capsys) -> None:
    assert main([str(tmp_path), *args, *FAST]) == 2
    err = capsys.readouterr().err
    assert err.startswith("qfeat plan: error: ") and err.count("\n") == 1
    assert re.search(message, err), err
    assert not (tmp_path / "plan").exists()  # no job ran


def test_plan_keys_are_taken_and_the_rest_are_job_overrides(tmp_path) -> None:
    req = parse_request(tmp_path, ["min_survived=0.95", "bits=[8,3,4]", "blocks=2", "seed=3"])
    assert req.bits == (3, 4, 8) and req.blocks == [2] and req.overrides == ["seed=3"]
    assert req.target.min_survived == 0.95 and req.target.min_watched_r is None


def test_parts_are_every_block_and_kind_with_their_sizes() -> None:
    cfg = compose_config([])
    parts = select_parts(cfg.model, ["attention", "mlp_in"], [0, 3])
    assert [(p.block, p.kind) for p in parts] == [
        (b, k) for b in (0, 3) for k in ("attn_qkv", "attn_out", "mlp_in")
    ]
    arch = AutoConfig.from_pretrained(model_path(cfg.model))
    d, ff = arch.hidden_size, arch.intermediate_size
    sizes = {"attn_qkv": 3 * d * d, "attn_out": d * d, "mlp_in": ff * d}  # GPT-NeoX shapes
    assert [p.n_weights for p in parts] == [sizes[p.kind] for p in parts]


def test_a_plan_for_another_model_is_one_line(tmp_path) -> None:
    cfg = compose_config([])
    parts = select_parts(cfg.model, ["mlp"], [1])
    overrides = mixed_overrides("rtn", mixed_parts(parts, [3, 4]), "0" * 64)
    with pytest.raises(QfeatError, match=r"for_model=0000000000000000… is a plan for another"):
        plan_job(compose_config([f"out_root={tmp_path}", *overrides]))
    own = mixed_overrides("rtn", mixed_parts(parts, [3, 4]), model_identity(cfg.model))
    assert plan_job(compose_config([f"out_root={tmp_path}", *own])).method.for_model
