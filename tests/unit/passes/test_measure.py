"""The passes against independent oracles: TransformerLens' loss, torch's cross-entropy and KL,
and the whole-batch log-probs the blocked computation must equal."""

import math

import pytest
import torch

import sweep.passes.logprobs
from sweep.passes.logprobs import bucketed_kl, next_token_logprobs, next_token_nll, topk_logprobs
from sweep.passes.measure import measure
from sweep.passes.reference import compute_reference


@pytest.fixture(scope="module")
def reference(tiny):
    return compute_reference(tiny.model, {tiny.hook: tiny.sae}, tiny.tokens, 8, 1, 64, False)


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
    monkeypatch.setattr(sweep.passes.logprobs, "BLOCK_ENTRIES", 10 * tiny.model.d_vocab)
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
