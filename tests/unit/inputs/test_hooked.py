"""The hooked forward (HF forward hooks) reads what TransformerLens computes, and its codes are
SAE-Lens' own encode."""

import pytest
import torch

from helpers import dense_rows
from sweep.passes.logprobs import encode_codes
from sweep.passes.reference import compute_reference


@pytest.fixture(scope="module")
def reference(tiny):
    return compute_reference(tiny.model, {tiny.hook: tiny.sae}, tiny.tokens, 8, 1, 64, False)


def test_hf_hooks_read_what_transformer_lens_computes(tiny) -> None:
    hooks = [tiny.hook, tiny.hook.replace("resid_post", "resid_pre")]
    with torch.no_grad():
        acts, logits = tiny.model.run(tiny.tokens[:4], hooks)
        tl_logits, cache = tiny.tl.run_with_cache(tiny.tokens[:4], names_filter=hooks)
    for hook in hooks:
        torch.testing.assert_close(acts[hook], cache[hook], rtol=0, atol=1e-5)
    # Rounding of float32 log-probs grows with their magnitude: torch.testing's float32
    # tolerance (1e-5 + 1.3e-6·|x|), as the hub-fixture HF-vs-TL tests use.
    torch.testing.assert_close(
        logits.log_softmax(-1), tl_logits.log_softmax(-1), rtol=1.3e-6, atol=1e-5
    )


def test_codes_equal_sae_lens_encode(tiny, reference) -> None:
    tokens = tiny.tokens[:4]
    with torch.no_grad():
        _, cache = tiny.tl.run_with_cache(tokens, names_filter=tiny.hook)
        expected = tiny.sae.encode(cache[tiny.hook][:, 1:]).reshape(-1, tiny.sae.cfg.d_sae)
        acts, _ = tiny.model.run(tokens, [tiny.hook])
        got = encode_codes(tiny.sae, acts[tiny.hook], first=1)
        assert torch.equal(got, tiny.sae.encode(acts[tiny.hook][:, 1:]).reshape(got.shape))
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    stored = dense_rows(reference.codes[tiny.hook], 0, len(expected))
    torch.testing.assert_close(stored, got, rtol=1e-6, atol=1e-6)
