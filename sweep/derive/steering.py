"""Steering and ablation fidelity: does acting along a feature still do the same after compression?

For a sample of features, the same intervention is made at the SAE's hook in the FP and in the
compressed model, on the same tokens: *steering* adds α × (the feature's FP peak activation) ×
its decoder direction at every measured position; *ablation* removes the feature's own
reconstruction contribution (its code at that position × its decoder direction). Each
intervention's effect is the change of next-token log-probabilities it causes. Per feature the
effect is summarised by its mean over tokens (a vocabulary-sized vector) and the mean per-token
KL(P_base ‖ P_intervened); fidelity compares the FP and compressed summaries: the Pearson
correlation of the mean effect vectors and the ratio of KL magnitudes.
"""

from dataclasses import dataclass

import numpy as np
import torch
from sae_lens import SAE

from sweep.inputs.hooked import HookedLM, edited_residual
from sweep.passes.logprobs import batches, encode_codes, next_token_logprobs

STEER, ABLATE = "steer", "ablate"
# Elements of float64 log-probs one edited forward may produce (2^26: 512 MiB): on tiny all
# sampled features share a forward; at a 256k vocabulary each feature has its own.
EDIT_BLOCK_ELEMENTS = 2**26


@dataclass
class Effects:
    """Per sampled feature: mean Δ log-prob over predicted tokens [n, vocab] and mean KL [n]."""

    mean_effect: torch.Tensor
    kl: torch.Tensor


def _base(lm: HookedLM, sae: SAE, hook: str, batch: torch.Tensor, features: list[int]):
    """Base next-token log-probs and the sampled features' codes at every position."""
    acts, logits = lm.run(batch, [hook])
    codes = encode_codes(sae, acts[hook], 0).reshape(*batch.shape, -1)[..., features]
    return next_token_logprobs(logits).double(), codes


def feature_group_size(rows: int, positions: int, vocab: int) -> int:
    """How many features one edited forward carries: their copies of a batch of `rows`
    sequences stacked, with the float64 log-probs of the stack within `EDIT_BLOCK_ELEMENTS`."""
    return max(1, EDIT_BLOCK_ELEMENTS // (rows * positions * vocab))


def _edit(
    mode: str,
    alpha: float,
    scales: torch.Tensor,
    w_dec: torch.Tensor,
    codes: torch.Tensor,
    mask: torch.Tensor,
    rows_shape: torch.Size,
    js: list[int],
) -> torch.Tensor:
    """The residual change of features `js` [features, rows, pos, d_model] in `mode`."""
    if mode == STEER:
        steer = (alpha * scales[js].to(w_dec))[:, None, None, None] * w_dec[js, None, None]
        return mask * steer.expand(-1, *rows_shape, -1)
    return mask * (-codes[..., js].movedim(-1, 0)[..., None] * w_dec[js, None, None])


@torch.no_grad()
def feature_effects(
    lm: HookedLM,
    sae: SAE,
    hook: str,
    features: list[int],
    tokens: torch.Tensor,
    modes: tuple[str, ...],
    alpha: float,
    scales: torch.Tensor,
    first: int,
    batch_size: int,
) -> dict[str, Effects]:
    """Effects of steering and/or ablating (`modes`) each feature in `features` on `tokens`
    [n, seq_len], one Effects per mode.

    `scales` [len(features)] are the features' FP peak activations (steering strength unit).
    Positions before `first` (BOS) are never edited nor scored. The unedited forward of a batch
    serves every mode; several features share one edited forward: the batch is repeated once
    per feature and each copy gets its own edit.
    """
    n, vocab = len(features), lm.d_vocab
    mean_effect = {m: torch.zeros(n, vocab, dtype=torch.float64) for m in modes}
    kl = {m: torch.zeros(n, dtype=torch.float64) for m in modes}
    count = 0
    w_dec = sae.W_dec[features].detach()
    for batch in batches(tokens, batch_size):
        batch = batch.to(lm.device)
        base, codes = _base(lm, sae, hook, batch, features)
        scored = base[:, first:]
        p_base = scored.exp().flatten()
        mask = torch.zeros(batch.shape[1], 1, device=lm.device, dtype=w_dec.dtype)
        mask[first:] = 1
        count += scored.shape[0] * scored.shape[1]
        group = feature_group_size(*batch.shape, vocab)
        for mode, lo in ((m, lo) for m in modes for lo in range(0, n, group)):
            js = list(range(lo, min(n, lo + group)))
            change = _edit(mode, alpha, scales, w_dec, codes, mask, batch.shape, js)
            change = change.flatten(0, 1)  # [features × rows, pos, d_model]
            stacked = batch.repeat(len(js), 1)
            with edited_residual(lm, hook, lambda h, c=change: h + c.to(h.dtype)):
                edited = next_token_logprobs(lm(stacked)).double()[:, first:]
            diff = edited.unflatten(0, (len(js), batch.shape[0])) - scored
            mean_effect[mode][js] += diff.sum((1, 2)).cpu()
            # KL(base ‖ edited) summed over tokens: Σ p_base (scored − edited), exactly 0
            # where the edit changed nothing
            kl[mode][js] -= (diff.flatten(1) @ p_base).cpu()
    return {m: Effects(mean_effect[m] / count, kl[m] / count) for m in modes}


def fidelity(fp: Effects, q: Effects) -> dict[str, np.ndarray]:
    """Per feature: Pearson r of FP vs compressed mean effects (NaN when either is constant)
    and the ratio of their KL magnitudes (compressed / FP; NaN when the FP effect is zero)."""
    a = fp.mean_effect - fp.mean_effect.mean(1, keepdim=True)
    b = q.mean_effect - q.mean_effect.mean(1, keepdim=True)
    denom = (a.square().sum(1) * b.square().sum(1)).sqrt()
    r = torch.where(denom > 0, (a * b).sum(1) / denom, torch.nan)
    ratio = torch.where(fp.kl > 0, q.kl / fp.kl, torch.nan)
    return {"r": r.clamp(-1, 1).numpy(), "kl_ratio": ratio.numpy()}
