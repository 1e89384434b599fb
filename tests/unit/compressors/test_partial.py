"""Partial compression: module kinds and blocks select exactly the named matrices, per
architecture, and every other parameter stays bit-identical to FP, for every method that runs
in the unit tier (llm-compressor's: tests/e2e/test_partial_jobs.py)."""

import pytest
import torch
from test_compress import small_neox
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM

from conftest import method
from sweep.base.errors import QfeatError
from sweep.compressors import COMPRESSORS, compress_model, target_linears
from sweep.compressors.llmc import neox_mappings
from sweep.compressors.registry import block_index, module_kind
from sweep.config.compression import (
    GROUPS,
    KINDS,
    METHODS,
    CalibratedConfig,
    TargetedConfig,
)

NEOX_KINDS = {
    "attn_qkv": ["attention.query_key_value"],
    "attn_out": ["attention.dense"],
    "mlp_in": ["mlp.dense_h_to_4h"],
    "mlp_out": ["mlp.dense_4h_to_h"],
}
LLAMA_KINDS = {
    "attn_qkv": ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"],
    "attn_out": ["self_attn.o_proj"],
    "mlp_in": ["mlp.gate_proj", "mlp.up_proj"],
    "mlp_out": ["mlp.down_proj"],
}


def small_llama() -> LlamaForCausalLM:
    cfg = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=32,
    )
    return LlamaForCausalLM(cfg).eval()


@pytest.mark.parametrize(
    ("model", "prefix", "kinds", "depth"),
    [
        (small_neox, "gpt_neox.layers", NEOX_KINDS, 2),
        (small_llama, "model.layers", LLAMA_KINDS, 3),
    ],
)
def test_each_kind_names_its_modules_and_the_groups_are_their_union(
    model, prefix, kinds, depth
) -> None:
    net = model()
    for kind, suffixes in kinds.items():
        names = [n for n, _ in target_linears(net, [kind])]
        assert names == [f"{prefix}.{b}.{s}" for b in range(depth) for s in suffixes]
        assert {module_kind(n) for n in names} == {kind}
    for group, members in GROUPS.items():
        assert target_linears(net, [group]) == target_linears(net, list(members))
    last = [n for n, _ in target_linears(net, ["mlp_out", "attn_out"], blocks=[depth - 1])]
    assert last == [f"{prefix}.{depth - 1}.{s}" for s in (*kinds["attn_out"], *kinds["mlp_out"])]
    assert {block_index(n) for n in last} == {depth - 1}


def test_a_selection_that_matches_nothing_names_what() -> None:
    with pytest.raises(QfeatError, match=r"compression.blocks \[2, 5\] select nothing: .*0..1"):
        target_linears(small_neox(), ["mlp"], blocks=[0, 2, 5])

    class Odd(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = nn.ModuleList(
                [nn.ModuleDict({"mlp": nn.ModuleDict({"w": nn.Linear(2, 2)})})]
            )

    with pytest.raises(QfeatError, match="mlp_in matches no linear layer"):
        target_linears(Odd(), ["mlp_in"])
    assert [n for n, _ in target_linears(Odd(), ["mlp"])] == ["layers.0.mlp.w"]


# Methods whose tiny jobs run in the unit tier (llm-compressor's calibrated ones are e2e).
UNIT_METHODS = [
    n
    for n in COMPRESSORS.names()
    if issubclass(METHODS.get(n), TargetedConfig)
    and not issubclass(METHODS.get(n), CalibratedConfig)
]  # mixed selects per part: tests/unit/compressors/test_mixed.py
SELECTIONS = [("[attn_out]", "[1]"), ("[attn_qkv,mlp_in]", "[0]"), ("[mlp]", "null")]


def module_params(model: nn.Module, name: str) -> set[str]:
    """State-dict keys of one module (a replaced module's own tensors included)."""
    return {k for k in model.state_dict() if k.startswith(f"{name}.")}


@pytest.mark.parametrize("name", UNIT_METHODS)
@pytest.mark.parametrize(("targets", "blocks"), SELECTIONS)
def test_partial_compression_changes_exactly_the_selected_matrices(name, targets, blocks) -> None:
    model = small_neox()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    modules_before = dict(model.named_modules())
    cfg = method(
        f"compression={name}",
        f"compression.targets={targets}",
        f"compression.blocks={blocks}",
        f"bits={METHODS.get(name).bit_choices[0] if METHODS.get(name).bit_choices else 4}",
        "sparsity=0.5",
        *(["compression.group_size=32"] if hasattr(METHODS.get(name), "group_size") else []),
        *(  # the noise goes on the weights its matched method compresses
            [f"compression.match.targets={targets}", f"compression.match.blocks={blocks}"]
            if name == "noise"
            else []
        ),
    )
    chosen = [n for n, _ in target_linears(model, cfg.targets, cfg.blocks)]
    assert compress_model(model, cfg) == len(chosen)
    after = model.state_dict()
    selected = set().union(*(module_params(model, n) for n in chosen))
    for key, value in after.items():
        if key not in selected:
            assert key in before and torch.equal(value, before[key]), f"{name} changed {key}"
    for n in chosen:  # replaced by a library module, re-typed by torchao, or rewritten
        module = dict(model.named_modules())[n]
        weight = module.weight.data
        assert (
            module is not modules_before[n]
            or type(weight) is not torch.Tensor
            or not torch.equal(weight, before[f"{n}.weight"])
        ), n


def test_blocks_are_part_of_a_key_only_when_chosen(tmp_path) -> None:
    """`blocks` came after RESULTS_VERSION 2: left null it is out of the key (every earlier
    result keeps its key); chosen, it changes it."""
    from sweep.config.compose import compose_config
    from sweep.job.keys import plan_job

    def keyed(*overrides: str):
        return plan_job(compose_config([f"out_root={tmp_path}", *overrides]))

    every = keyed()
    assert "blocks" not in every.keyed["compression"]
    assert set(every.keyed["compression"]) == {
        "name",
        "bits",
        "targets",
        "granularity",
        "group_size",
        "symmetric",
    }
    assert keyed("compression.blocks=[1]").key != every.key
    assert keyed("compression.blocks=[1]").keyed["compression"]["blocks"] == [1]


def test_smoothing_maps_only_the_selected_blocks_and_kinds() -> None:
    model = small_neox()
    cfg = method(
        "compression=awq", "bits=4", "compression.targets=[mlp_in]", "compression.blocks=[1]"
    )
    assert neox_mappings(model, cfg) == [
        (r"re:.*layers\.(1)\.post_attention_layernorm$", r"re:.*layers\.(1)\.mlp.dense_h_to_4h$")
    ]
    whole = method("compression=awq", "bits=4")
    assert [n for n, _ in neox_mappings(model, whole)] == [
        "re:.*input_layernorm$",
        "re:.*post_attention_layernorm$",
    ]
    with pytest.raises(QfeatError, match="smoothing mappings limited to it"):
        neox_mappings(small_llama(), cfg)
    assert neox_mappings(small_llama(), whole) is None
    assert tuple(k for g in GROUPS.values() for k in g) == KINDS
