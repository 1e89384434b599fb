"""Every registered compressor touches exactly the target weights; RTN matches rtn()."""

import pytest
import torch
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

from conftest import method
from sweep.base.errors import QfeatError
from sweep.compressors import COMPRESSORS, compress_model, target_linears
from sweep.compressors.rtn import rtn
from sweep.config.compression import METHODS


def small_neox() -> GPTNeoXForCausalLM:
    cfg = GPTNeoXConfig(
        vocab_size=64,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=32,
    )
    return GPTNeoXForCausalLM(cfg).eval()


def test_every_method_has_an_implementation() -> None:
    """Each config node of the compression group is applied by its compressor (the matched
    pair is orchestrated by the job from its baseline and magnitude pruning)."""
    assert set(COMPRESSORS.names()) == set(METHODS.names()) - {"magnitude_matched"}


def test_targets_are_block_linears_only() -> None:
    names = [n for n, _ in target_linears(small_neox(), ["attention", "mlp"])]
    assert names == [
        f"gpt_neox.layers.{i}.{m}"
        for i in range(2)
        for m in (
            "attention.query_key_value",
            "attention.dense",
            "mlp.dense_h_to_4h",
            "mlp.dense_4h_to_h",
        )
    ]
    assert next(n for n, _ in target_linears(small_neox(), ["mlp"])).endswith("dense_h_to_4h")
    with pytest.raises(QfeatError, match="unknown compression targets"):
        target_linears(small_neox(), ["embeddings"])


WEIGHTS_ONLY = [n for n in COMPRESSORS.names() if METHODS.get(n).weights_only]


@pytest.mark.parametrize("name", WEIGHTS_ONLY)
def test_only_target_weights_change(name: str) -> None:
    model = small_neox()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = method(f"compression={name}", "bits=2", "sparsity=0.5")
    n = compress_model(model, cfg)
    assert n == (0 if name == "none" else 8)
    targets = {f"{t}.weight" for t, _ in target_linears(model, ["attention", "mlp"])}
    for key, value in model.state_dict().items():
        if key not in targets:
            assert torch.equal(value, before[key]), f"{name} changed non-target {key}"
    changed = [k for k in targets if not torch.equal(model.state_dict()[k], before[k])]
    assert (len(changed) == 0) == (name == "none")


def test_rtn_compressor_applies_rtn_with_config() -> None:
    model = small_neox()
    w = model.gpt_neox.layers[0].mlp.dense_4h_to_h.weight.detach().clone()
    cfg = method(
        "compression=rtn",
        "bits=3",
        "compression.granularity=group",
        "compression.group_size=16",
        "compression.symmetric=false",
    )
    compress_model(model, cfg)
    expected = rtn(w, 3, "group", group_size=16, symmetric=False)
    assert torch.equal(model.gpt_neox.layers[0].mlp.dense_4h_to_h.weight, expected)


def test_group_size_must_divide_every_target_before_any_change() -> None:
    model = small_neox()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(QfeatError, match="does not divide"):
        cfg = method(
            "compression=rtn", "compression.granularity=group", "compression.group_size=24"
        )
        compress_model(model, cfg)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("scope", ["matrix", "global"])
def test_magnitude_prunes_exactly_the_requested_fraction_of_targets(scope: str) -> None:
    model = small_neox()
    compress_model(
        model, method("compression=magnitude", f"compression.scope={scope}", "sparsity=0.3")
    )
    layers = target_linears(model, ["attention", "mlp"])
    zeros = [int((layer.weight == 0).sum()) for _, layer in layers]
    sizes = [layer.weight.numel() for _, layer in layers]
    if scope == "matrix":
        assert zeros == [round(0.3 * n) for n in sizes]
    else:
        assert sum(zeros) == round(0.3 * sum(sizes))
    assert int((model.get_output_embeddings().weight == 0).sum()) == 0
