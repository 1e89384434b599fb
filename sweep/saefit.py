"""How well the FP model's SAE still fits a model's activations: the standard SAE metrics.

On the first sequences of the measured token set, for the FP and for the compressed model:
explained variance of the hook activations by the SAE's reconstruction, mean L0 of the codes,
the model's next-token loss, and the loss when the hook activation is replaced by the SAE's
reconstruction (positions from `first` on; BOS is never edited, as it is never measured).
"""

import torch
from sae_lens import SAE

from sweep.hooked import HookedLM
from sweep.measure import batches, next_token_nll
from sweep.steering import edited_residual


def _flat(acts: torch.Tensor, first: int) -> torch.Tensor:
    return acts[:, first:].reshape(-1, acts.shape[-1]).double()


def reconstruct(sae: SAE, residual: torch.Tensor, centre: bool) -> torch.Tensor:
    """The residual stream with the SAE's reconstruction in place of what the SAE reads."""
    mean = residual.mean(-1, keepdim=True) if centre else 0.0
    x = (residual - mean).to(sae.W_enc.dtype)
    return (sae.decode(sae.encode(x)).to(residual.dtype) + mean).to(residual.dtype)


@torch.no_grad()
def sae_fit(
    lm: HookedLM, saes: dict[str, SAE], tokens: torch.Tensor, first: int, batch_size: int
) -> dict[str, dict[str, float]]:
    """Per hook: explained_variance, l0, ce_loss and ce_loss_spliced over `tokens`.

    One plain forward per batch feeds every SAE; each SAE then needs its own spliced forward.
    """
    sums = {hook: dict.fromkeys(("n", "sse", "sq", "l0", "spliced"), 0.0) for hook in saes}
    sum_x = {hook: 0.0 for hook in saes}
    nll, count = 0.0, 0
    for batch in batches(tokens, batch_size):
        batch = batch.to(lm.device)
        acts, logits = lm.run(batch, list(saes))
        token_nll = next_token_nll(logits, batch)[:, first:]
        nll += float(token_nll.double().sum())
        count += token_nll.numel()
        for hook, sae in saes.items():
            x = _flat(acts[hook], first)
            codes = sae.encode(x.to(sae.W_enc.dtype))
            acc = sums[hook]
            acc["n"] += x.shape[0]
            acc["sse"] += float((x - sae.decode(codes).double()).square().sum())
            acc["sq"] += float(x.square().sum())
            acc["l0"] += float((codes > 0).sum())
            sum_x[hook] = sum_x[hook] + x.sum(0)

            def splice(h: torch.Tensor, sae=sae) -> torch.Tensor:
                spliced = reconstruct(sae, h, lm.centre)
                return torch.cat([h[:, :first], spliced[:, first:]], dim=1)

            with edited_residual(lm, hook, splice):
                spliced_nll = next_token_nll(lm(batch), batch)[:, first:]
            acc["spliced"] += float(spliced_nll.double().sum())
    out = {}
    for hook, acc in sums.items():
        total = acc["sq"] - float(sum_x[hook].square().sum()) / acc["n"]
        out[hook] = {
            "explained_variance": 1.0 - acc["sse"] / total,
            "l0": acc["l0"] / acc["n"],
            "ce_loss": nll / count,
            "ce_loss_spliced": acc["spliced"] / count,
        }
    return out
