"""The measurement pass (HF forward hooks) against TransformerLens' own activations and loss,
and SAE-Lens' own encode."""

import math

import pytest
import torch

import sweep.measure
from sweep.measure import (
    bucketed_kl,
    compute_reference,
    encode_codes,
    hooked_forward,
    measure,
    next_token_logprobs,
    next_token_nll,
    topk_logprobs,
)


@pytest.fixture(scope="module")
def reference(tiny):
    return compute_reference(tiny.model, {tiny.hook: tiny.sae}, tiny.tokens, 8, 1, 64, False)


def test_hf_hooks_read_what_transformer_lens_computes(tiny) -> None:
    hooks = [tiny.hook, tiny.hook.replace("resid_post", "resid_pre")]
    with torch.no_grad():
        acts, logits = hooked_forward(tiny.model, tiny.tokens[:4], hooks)
        tl_logits, cache = tiny.tl.run_with_cache(tiny.tokens[:4], names_filter=hooks)
    for hook in hooks:
        torch.testing.assert_close(acts[hook], cache[hook], rtol=0, atol=1e-5)
    # Rounding of float32 log-probs grows with their magnitude: torch.testing's float32
    # tolerance (1e-5 + 1.3e-6·|x|), as the hub-fixture HF-vs-TL tests use.
    torch.testing.assert_close(
        logits.log_softmax(-1), tl_logits.log_softmax(-1), rtol=1.3e-6, atol=1e-5
    )


def test_perplexity_equals_exp_of_transformer_lens_loss(tiny, reference) -> None:
    batch = 8
    result = measure(reference, {}, {tiny.hook: tiny.sae}, tiny.tokens, batch, 1, False)
    with torch.no_grad():
        losses = [
            tiny.tl(tiny.tokens[i : i + batch], return_type="loss").item()
            for i in range(0, len(tiny.tokens), batch)
        ]
    assert len(tiny.tokens) % batch == 0  # equal batches: mean of batch means is the mean
    assert math.isclose(
        result.fp_loss.perplexity, math.exp(sum(losses) / len(losses)), rel_tol=1e-5
    )
    assert result.fp_loss.count == tiny.tokens.numel() - len(tiny.tokens)


def test_codes_equal_sae_lens_encode(tiny, reference) -> None:
    tokens = tiny.tokens[:4]
    with torch.no_grad():
        _, cache = tiny.tl.run_with_cache(tokens, names_filter=tiny.hook)
        expected = tiny.sae.encode(cache[tiny.hook][:, 1:]).reshape(-1, tiny.sae.cfg.d_sae)
        acts, _ = hooked_forward(tiny.model, tokens, [tiny.hook])
        got = encode_codes(tiny.sae, acts[tiny.hook], first=1)
        assert torch.equal(got, tiny.sae.encode(acts[tiny.hook][:, 1:]).reshape(got.shape))
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    stored = reference.codes[tiny.hook].dense(0, len(expected))
    torch.testing.assert_close(stored, got, rtol=1e-6, atol=1e-6)


def test_identical_model_gives_r_one_equal_loss_zero_kl(tiny, reference) -> None:
    result = measure(
        reference, {"same": tiny.model}, {tiny.hook: tiny.sae}, tiny.tokens, 8, 1, False
    )
    same = result.variants["same"]
    stats = same.stats[tiny.hook]
    fired = stats.m2_x > 0
    assert fired.any()
    assert torch.all(stats.pearson()[fired] > 1 - 1e-6)
    assert same.loss.mean == pytest.approx(result.fp_loss.mean, rel=1e-6)
    assert abs(same.kl.mean) < 1e-6


def test_next_token_nll_matches_cross_entropy() -> None:
    logits = torch.randn(2, 5, 11)
    tokens = torch.randint(0, 11, (2, 5))
    expected = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, 11), tokens[:, 1:].reshape(-1), reduction="none"
    )
    torch.testing.assert_close(next_token_nll(logits, tokens).reshape(-1), expected)


def test_bucketed_kl_is_exact_at_full_vocab_and_a_lower_bound_below() -> None:
    fp, q = torch.randn(3, 7, 50), torch.randn(3, 7, 50)
    exact = torch.nn.functional.kl_div(
        torch.log_softmax(q[:, :-1], -1),
        torch.log_softmax(fp[:, :-1], -1),
        reduction="none",
        log_target=True,
    ).sum(-1)
    fp_lp, q_lp = next_token_logprobs(fp), next_token_logprobs(q)
    top, ids = topk_logprobs(fp_lp, 50)
    torch.testing.assert_close(bucketed_kl(top, ids, q_lp), exact, rtol=1e-4, atol=1e-5)
    for k in (1, 5, 20):
        top, ids = topk_logprobs(fp_lp, k)
        approx = bucketed_kl(top, ids, q_lp)
        assert torch.all(approx <= exact + 1e-5) and torch.all(approx >= -1e-6)


def test_blocked_log_probs_equal_the_whole_batch(tiny, monkeypatch) -> None:
    """Loss, top-k log-probs and KL taken a block of positions at a time (here 10, so blocks
    end mid-sequence) equal the same quantities over the whole batch's log-probs."""
    monkeypatch.setattr(sweep.measure, "BLOCK_ENTRIES", 10 * tiny.model.d_vocab)
    saes, tokens = {tiny.hook: tiny.sae}, tiny.tokens[:4]
    ref = compute_reference(tiny.model, saes, tokens, 4, 1, 64, False)
    result = measure(ref, {"same": tiny.model}, saes, tokens, 4, 1, False)
    with torch.no_grad():
        logits = tiny.model(tokens)
    logprobs = next_token_logprobs(logits)
    top, ids = topk_logprobs(logprobs, 64)
    assert torch.equal(ref.nll, next_token_nll(logits, tokens))
    assert torch.equal(ref.topk_logprobs, top)
    assert torch.equal(logprobs.gather(-1, ref.topk_ids.long()), top)
    kl = bucketed_kl(top, ids, logprobs)
    assert result.variants["same"].kl.total == pytest.approx(float(kl.double().sum()), rel=1e-12)
    assert torch.equal(result.variants["same"].nll, ref.nll)
