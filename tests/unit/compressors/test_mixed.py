"""Mixed precision: each part at its own bits equals RTN of each matrix by hand, one part at
one bit-width equals the uniform method, bits per weight by hand, and every bad plan is one
line before any weight changes."""

import pytest
import torch
from test_compress import small_neox

from conftest import compose_config, method
from sweep.base.errors import QfeatError
from sweep.compressors import bits_per_weight, compress_model, target_linears
from sweep.compressors.rtn import rtn
from sweep.job.keys import plan_job

# attention of block 0 at 5 bits, attention output of block 1 at 2, the MLPs at 3.
PARTS = (
    "compression.parts=[{targets:[attention],blocks:[0],bits:5},"
    "{targets:[attn_out],blocks:[1],bits:2},{targets:[mlp],bits:3}]"
)
EXPECTED_BITS = {
    "gpt_neox.layers.0.attention.query_key_value": 5,
    "gpt_neox.layers.0.attention.dense": 5,
    "gpt_neox.layers.1.attention.dense": 2,
    **{
        f"gpt_neox.layers.{b}.mlp.{m}": 3
        for b in (0, 1)
        for m in ("dense_h_to_4h", "dense_4h_to_h")
    },
}


def test_each_part_is_rtn_at_its_bits_and_the_rest_stays_fp() -> None:
    model = small_neox()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = method(
        "compression=mixed", PARTS, "+compression.options={granularity:group,group_size:16}"
    )
    assert compress_model(model, cfg) == len(EXPECTED_BITS)
    for key, value in model.state_dict().items():
        name = key.removesuffix(".weight")
        if name in EXPECTED_BITS and key.endswith(".weight"):
            expected = rtn(before[key], EXPECTED_BITS[name], "group", group_size=16)
            assert torch.equal(value, expected), key
        else:
            assert torch.equal(value, before[key]), key


def test_one_part_at_one_bit_width_is_the_uniform_method() -> None:
    mixed, uniform = small_neox(), small_neox()
    uniform.load_state_dict(mixed.state_dict())
    compress_model(mixed, method("compression=mixed", "bits=3"))
    compress_model(uniform, method("compression=rtn", "bits=3"))
    for (key, a), b in zip(mixed.state_dict().items(), uniform.state_dict().values(), strict=True):
        assert torch.equal(a, b), key


def test_bits_per_weight_by_hand() -> None:
    model = small_neox()
    sizes = {n: layer.weight.numel() for n, layer in target_linears(model, ["attention", "mlp"])}
    expected = sum(sizes[n] * EXPECTED_BITS.get(n, 32) for n in sizes) / sum(sizes.values())
    assert bits_per_weight(model, method("compression=mixed", PARTS)) == pytest.approx(expected)
    assert bits_per_weight(model, method("compression=rtn", "bits=4")) == 4.0
    partial = method("compression=rtn", "bits=4", "compression.targets=[mlp_out]")
    mlp_out = sum(v for n, v in sizes.items() if n.endswith("4h_to_h"))
    assert bits_per_weight(model, partial) == pytest.approx(
        (4 * mlp_out + 32 * (sum(sizes.values()) - mlp_out)) / sum(sizes.values())
    )
    assert bits_per_weight(model, method("compression=magnitude")) is None


def test_a_plans_model_guard_and_unused_inputs_stay_out_of_its_key(tmp_path) -> None:
    def keyed(*overrides: str):
        return plan_job(compose_config([f"out_root={tmp_path}", "compression=mixed", *overrides]))

    plain = keyed(PARTS)
    assert set(plain.keyed["compression"]) == {"name", "method", "options", "parts"}
    assert keyed(PARTS, "calibration_sequences=7").key == plain.key
    assert keyed(PARTS, "compression.method=gptq").keyed["compression"]["calibration_sequences"]
    assert keyed(PARTS, "bits=7").key == plain.key  # every part has its own bits
    assert keyed("bits=3").key != keyed("bits=4").key  # the default part is at ${bits}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            [
                "compression.parts=[{targets:[attention],bits:5},{targets:[attn_out],blocks:[1],bits:3}]"
            ],
            r"parts\[0\] and \[1\] both select attn_out of blocks \[1\]",
        ),
        (["compression.parts=[]"], "needs compression.parts"),
        (["compression.method=awq"], r"mixed precision takes \['gptq', 'rtn'\]"),
        (["compression.parts=[{targets:[mlp],bits:1}]"], r"parts\[0\]: .*supports bits in 2..16"),
        (["+compression.options={bits:3}"], r"options sets \['bits'\]"),
        (["+compression.options={sparsity:3}"], r"parts\[0\] as rtn: Key 'sparsity' not in"),
        (["compression.parts=[{targets:[mlp_x],bits:3}]"], r"parts\[0\].targets=\['mlp_x'\]"),
        (["compression.parts=[{targets:[mlp],bits:3,blocks:[9]}]"], "the model has 4"),
    ],
)
def test_a_bad_mixed_config_is_one_line(overrides: list[str], message: str, tmp_path) -> None:
    with pytest.raises(QfeatError, match=message):
        plan_job(compose_config([f"out_root={tmp_path}", "compression=mixed", *overrides]))
