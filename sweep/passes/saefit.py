"""How well the FP model's SAE still fits a model's activations: the standard SAE metrics.

On the first sequences of the measured token set, for the FP and for the compressed model:
explained variance of the hook activations by the SAE's reconstruction, mean L0 of the codes,
the model's next-token loss, and the loss when the hook activation is replaced by the SAE's
reconstruction (positions from `first` on; BOS is never edited, as it is never measured).

The plain forward these need is the measurement pass's own: the passes hand each batch's hook
activations, SAE codes and per-token loss to `FitTotals`, which adds only the spliced forward
(one per SAE and fitted batch).
"""

import torch
from sae_lens import SAE

from sweep.inputs.hooked import HookedLM, edited_residual
from sweep.passes.logprobs import next_token_nll
from sweep.results.summary import SaeFit


def reconstruct(sae: SAE, residual: torch.Tensor, centre: bool) -> torch.Tensor:
    """The residual stream with the SAE's reconstruction in place of what the SAE reads."""
    mean = residual.mean(-1, keepdim=True) if centre else 0.0
    x = (residual - mean).to(sae.W_enc.dtype)
    return (sae.decode(sae.encode(x)).to(residual.dtype) + mean).to(residual.dtype)


class FitTotals:
    """Running sums of the SAE-fit metrics of one model over its first `n_sequences`."""

    def __init__(self, saes: dict[str, SAE], n_sequences: int, first: int) -> None:
        self.saes, self.n_sequences, self.first = saes, n_sequences, first
        self.sums = {hook: dict.fromkeys(("n", "sse", "sq", "l0", "spliced"), 0.0) for hook in saes}
        self.sum_x: dict[str, torch.Tensor | float] = dict.fromkeys(saes, 0.0)
        self.nll, self.count = 0.0, 0

    def fitted(self, batch: torch.Tensor, start: int) -> int:
        """How many of the batch's sequences (sequences start.. of the token set) are fitted."""
        return max(0, min(len(batch), self.n_sequences - start))

    def fold_loss(self, batch: torch.Tensor, start: int, nll: torch.Tensor) -> None:
        """Add the model's own per-token loss [b, seq_len − 1] of a pass batch."""
        token_nll = nll[: self.fitted(batch, start), self.first :]
        self.nll += float(token_nll.double().sum())
        self.count += token_nll.numel()

    @torch.no_grad()
    def fold_sae(
        self,
        lm: HookedLM,
        hook: str,
        batch: torch.Tensor,
        start: int,
        acts: torch.Tensor,
        codes: torch.Tensor,
    ) -> None:
        """Add one SAE's part of a pass batch: its hook activations [b, seq_len, d_in] and the
        codes of acts[:, first:] as [b · (seq_len − first), d_sae] from the pass, and the loss
        of a forward with the reconstruction spliced in at the hook."""
        m = self.fitted(batch, start)
        if m == 0:
            return
        sae, acc = self.saes[hook], self.sums[hook]
        x = acts[:m, self.first :].reshape(-1, acts.shape[-1]).double()
        fitted = codes[: x.shape[0]]
        acc["n"] += x.shape[0]
        acc["sse"] += float((x - sae.decode(fitted).double()).square().sum())
        acc["sq"] += float(x.square().sum())
        acc["l0"] += float((fitted > 0).sum())
        self.sum_x[hook] = self.sum_x[hook] + x.sum(0)

        def splice(h: torch.Tensor) -> torch.Tensor:
            spliced = reconstruct(sae, h, lm.centre)
            return torch.cat([h[:, : self.first], spliced[:, self.first :]], dim=1)

        with edited_residual(lm, hook, splice):
            spliced_nll = next_token_nll(lm(batch[:m]), batch[:m])[:, self.first :]
        acc["spliced"] += float(spliced_nll.double().sum())

    def metrics(self) -> dict[str, SaeFit]:
        """Per hook: explained variance, L0, loss and loss with the reconstruction spliced in."""
        out = {}
        for hook, acc in self.sums.items():
            total = acc["sq"] - float(torch.as_tensor(self.sum_x[hook]).square().sum()) / acc["n"]
            out[hook] = SaeFit(
                explained_variance=1.0 - acc["sse"] / total,
                l0=acc["l0"] / acc["n"],
                ce_loss=self.nll / self.count,
                ce_loss_spliced=acc["spliced"] / self.count,
            )
        return out
