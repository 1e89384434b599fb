"""What was lost: steering/ablation fidelity, SAE fit and contexts, against direct oracles."""

import copy
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import SMALL, compose_config
from sweep.base.errors import QfeatError
from sweep.derive.steering import ABLATE, STEER, feature_effects, fidelity
from sweep.inputs.hooked import HookedLM
from sweep.job.keys import plan_job
from sweep.job.run import run
from sweep.passes.logprobs import next_token_logprobs, next_token_nll
from sweep.passes.measure import measure
from sweep.passes.reference import compute_reference
from sweep.passes.saefit import FitTotals
from sweep.results.files import CONTEXTS_FILE, FEATURES_FILE, SUMMARY_FILE, TOKENS_FILE
from sweep.results.summary import parse_summary

FEATURES = [3, 17, 250]


@pytest.fixture(scope="module")
def active_features(tiny) -> list[int]:
    acts, _ = tiny.model.run(tiny.tokens[:4], [tiny.hook])
    codes = tiny.sae.encode(acts[tiny.hook][:, 1:].reshape(-1, acts[tiny.hook].shape[-1]))
    firing = (codes > 0).sum(0)
    return [int(f) for f in torch.argsort(firing, descending=True)[:3]]


def effects(tiny, lm, features, mode, alpha=2.0):
    scales = torch.ones(len(features), dtype=torch.float64)
    return feature_effects(
        lm, tiny.sae, tiny.hook, features, tiny.tokens[:4], (mode,), alpha, scales, 1, 2
    )[mode]


@pytest.mark.parametrize("mode", [STEER, ABLATE])
def test_identical_models_have_fidelity_one(tiny, active_features, mode) -> None:
    twin = HookedLM.wrap(copy.deepcopy(tiny.hf), tiny.processing)
    a = effects(tiny, tiny.model, active_features, mode)
    b = effects(tiny, twin, active_features, mode)
    scores = fidelity(a, b)
    np.testing.assert_allclose(scores["r"], 1.0, atol=1e-12)
    np.testing.assert_allclose(scores["kl_ratio"], 1.0, atol=1e-12)
    assert (a.kl > 0).all()


def test_zero_alpha_steers_nothing(tiny) -> None:
    zero = effects(tiny, tiny.model, FEATURES, STEER, alpha=0.0)
    assert torch.count_nonzero(zero.mean_effect) == 0 and torch.count_nonzero(zero.kl) == 0


def test_ablation_equals_a_direct_transformerlens_computation(tiny, active_features) -> None:
    feature = active_features[0]
    tokens = tiny.tokens[:4]
    ours = effects(tiny, tiny.model, [feature], ABLATE)

    def ablate(resid, hook):
        codes = tiny.sae.encode(resid)
        edited = resid - codes[..., feature, None] * tiny.sae.W_dec[feature]
        return torch.cat([resid[:, :1], edited[:, 1:]], dim=1)

    with torch.no_grad():
        base = next_token_logprobs(tiny.tl(tokens)).double()[:, 1:]
        hooked = tiny.tl.run_with_hooks(tokens, fwd_hooks=[(tiny.hook, ablate)])
        edited = next_token_logprobs(hooked).double()[:, 1:]
    direct = (edited - base).mean((0, 1))
    torch.testing.assert_close(ours.mean_effect[0], direct, atol=2e-5, rtol=1e-4)
    kl = (base.exp() * (base - edited)).sum(-1).mean()
    torch.testing.assert_close(ours.kl[0], kl, atol=2e-6, rtol=1e-3)


@pytest.mark.parametrize("mode", [STEER, ABLATE])
def test_several_features_in_one_forward_equal_each_feature_alone(tiny, active_features, mode):
    """Features share an edited forward (their copies of the batch stacked): each one's effect
    equals a direct TransformerLens computation of that feature alone, at alpha != 0."""
    tokens, alpha = tiny.tokens[:4], 2.5
    scales = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    ours = feature_effects(
        tiny.model, tiny.sae, tiny.hook, active_features, tokens, (mode,), alpha, scales, 1, 2
    )[mode]
    with torch.no_grad():
        base = next_token_logprobs(tiny.tl(tokens)).double()[:, 1:]
    for j, feature in enumerate(active_features):

        def edit(resid, hook, feature=feature, j=j):
            direction = tiny.sae.W_dec[feature]
            if mode == STEER:
                change = alpha * float(scales[j]) * direction.expand_as(resid)
            else:
                change = -tiny.sae.encode(resid)[..., feature, None] * direction
            return torch.cat([resid[:, :1], (resid + change)[:, 1:]], dim=1)

        with torch.no_grad():
            hooked = tiny.tl.run_with_hooks(tokens, fwd_hooks=[(tiny.hook, edit)])
            edited = next_token_logprobs(hooked).double()[:, 1:]
        direct = (edited - base).mean((0, 1))
        torch.testing.assert_close(ours.mean_effect[j], direct, atol=2e-5, rtol=1e-4)
        kl = (base.exp() * (base - edited)).sum(-1).mean()
        torch.testing.assert_close(ours.kl[j], kl, atol=2e-6, rtol=1e-3)
    assert (ours.kl > 0).all()


def test_sae_fit_equals_direct_computation(tiny) -> None:
    """Folded into the FP pass (batches of 4, the second only half fitted) and measured again
    on the same model in the compressed pass, the fit equals a direct TransformerLens one."""
    saes, tokens = {tiny.hook: tiny.sae}, tiny.tokens[:6]
    fp_fit, q_fit = FitTotals(saes, 6, 1), FitTotals(saes, 6, 1)
    ref = compute_reference(tiny.model, saes, tiny.tokens[:8], 4, 1, 8, False, fit=fp_fit)
    measure(ref, {"same": tiny.model}, saes, tiny.tokens[:8], 4, 1, False, fits={"same": q_fit})
    (fit,) = ref.sae_fit.values()
    assert asdict(q_fit.metrics()[tiny.hook]) == pytest.approx(asdict(fit), rel=1e-6)
    with torch.no_grad():
        _, cache = tiny.tl.run_with_cache(tokens, names_filter=tiny.hook)
        x = cache[tiny.hook][:, 1:].reshape(-1, tiny.sae.cfg.d_in).double()
        codes = tiny.sae.encode(x.float())
        recon = tiny.sae.decode(codes).double()
        ev = 1 - (x - recon).square().sum() / (x - x.mean(0)).square().sum()
        splice = lambda r, hook: torch.cat([r[:, :1], tiny.sae(r)[:, 1:]], dim=1)  # noqa: E731
        spliced = tiny.tl.run_with_hooks(tokens, fwd_hooks=[(tiny.hook, splice)])
        ce = next_token_nll(tiny.tl(tokens), tokens)[:, 1:].double().mean()
        ce_spliced = next_token_nll(spliced, tokens)[:, 1:].double().mean()
    assert fit.explained_variance == pytest.approx(float(ev), abs=1e-5)
    assert fit.l0 == pytest.approx(float((codes > 0).sum(-1).double().mean()), abs=1e-3)
    assert fit.ce_loss == pytest.approx(float(ce), abs=1e-5)
    assert fit.ce_loss_spliced == pytest.approx(float(ce_spliced), abs=1e-4)
    assert fit.ce_loss_spliced > fit.ce_loss


@pytest.fixture(scope="module")
def rtn2_job(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fidelity")
    cfg = compose_config(
        [*SMALL, f"out_root={out}", "bits=2", "fidelity.max_features=6", "survival.watch=[7]"]
    )
    run(cfg)
    return plan_job(cfg).out


def test_job_records_fidelity_fit_and_contexts(rtn2_job: Path) -> None:
    frame = pd.read_parquet(rtn2_job / FEATURES_FILE)
    summary = parse_summary(json.loads((rtn2_job / SUMMARY_FILE).read_text()))
    sampled = frame[frame["steer_r"].notna()]
    watched_active = bool(frame.loc[frame["feature"] == 7, "active"].item())
    assert (7 in set(sampled["feature"])) == watched_active
    others = sampled[sampled["feature"] != 7]
    assert len(others) == 6 and (others["class"] != "survived").sum() == 3  # ⌈6/2⌉ damaged
    (fid,) = summary.fidelity.values()
    assert fid.n_features == len(sampled) and fid.alpha == 4.0
    (fit,) = summary.sae_fit.values()
    assert 0 < fit.q.explained_variance < fit.fp.explained_variance <= 1
    contexts = pd.read_parquet(rtn2_job / CONTEXTS_FILE)
    tokens = pd.read_parquet(rtn2_job / TOKENS_FILE)
    top = contexts[(contexts["ranked_by"] == "fp") & (contexts["rank"] == 0)]
    peaks = frame.set_index("feature").loc[top["feature"], "fp_max"].to_numpy()
    np.testing.assert_allclose(top["fp_act"].to_numpy(), peaks, rtol=1e-6)
    assert set(contexts["feature"]) == set(frame.loc[frame["active"], "feature"])
    assert len(tokens) == 16 * 64 and tokens["bytes"].map(len).gt(0).all()


def test_watch_beyond_the_sae_is_refused(tmp_path: Path) -> None:
    cfg = compose_config([*SMALL, f"out_root={tmp_path}", "survival.watch=[99999]"])
    with pytest.raises(QfeatError, match=r"survival.watch \[99999\] beyond the"):
        run(cfg)
