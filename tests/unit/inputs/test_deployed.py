"""llama.cpp's own forward read at the SAE hooks: on an F32 GGUF of tiny, its residual stream
and logits are the HF model's up to llama.cpp's arithmetic (its tanh-GELU through an fp16
table, F16 KV cache), at every hook qfeat reads, centred as HookedLM centres."""

import llama_cpp  # noqa: F401 (a missing llama.cpp fails collection, never skips)
import pytest
import torch

from sweep.base.errors import QfeatError
from sweep.base.hooks import hook_name
from sweep.compressors.gguf.convert import source_gguf
from sweep.inputs.deployed import DeployedLM, graph_name


def test_hooks_name_llama_cpp_graph_tensors() -> None:
    assert graph_name("blocks.2.hook_resid_post", 4) == "l_out-2"
    assert graph_name("blocks.2.hook_resid_pre", 4) == "l_out-1"
    assert graph_name("blocks.0.hook_resid_pre", 4) == "embd"
    with pytest.raises(QfeatError, match="does not exist"):
        graph_name("blocks.4.hook_resid_post", 4)


def test_residual_and_logits_match_the_hf_forward(tiny) -> None:
    tokens = tiny.tokens[:3]
    hooks = [hook_name(0, "pre"), hook_name(1, "pre"), hook_name(2), hook_name(3)]
    deployed = DeployedLM(
        source_gguf(tiny.hf), hooks, 4, tokens.shape[1], tiny.model.centre, threads=2
    )
    acts, logits = deployed.run(tokens, hooks)
    hf_acts, hf_logits = tiny.model.run(tokens, hooks)
    for hook in hooks:
        err = (acts[hook] - hf_acts[hook]).norm() / hf_acts[hook].norm()
        assert err < 5e-3, (hook, float(err))
    assert hook_name(0, "pre") in acts and (acts[hook_name(0, "pre")] != 0).any()
    assert (logits.log_softmax(-1) - hf_logits.log_softmax(-1)).abs().mean() < 5e-3
    assert torch.equal(deployed(tokens), logits)
    assert torch.equal(deployed(tokens, logits_to_keep=1), logits[:, -1:])
    deployed.close()


def test_llama_cpp_gives_the_same_numbers_on_any_thread_count(tiny) -> None:
    """Its thread count (qfeat picks one for a small model) is a speed setting only."""
    tokens, hook = tiny.tokens[:2], hook_name(2)
    runs = []
    for threads in (1, 2):
        lm = DeployedLM(source_gguf(tiny.hf), [hook], 4, tokens.shape[1], True, threads)
        runs.append(lm.run(tokens, [hook]))
        lm.close()
    (acts1, logits1), (acts2, logits2) = runs
    assert torch.equal(logits1, logits2) and torch.equal(acts1[hook], acts2[hook])
