"""Quality metrics of `tiny` on held-out text: LM and unigram perplexity, SAE EV / L0 / dead.

Pure functions on loaded artefacts, reused by the build (manifest) and by the tests
(recomputed, never read back from the manifest). Every sequence starts with BOS; the BOS
position is never a prediction target and never an SAE input.
"""

from __future__ import annotations

import math
from typing import Any

import scipy.stats
import torch

from sweep.inputs.hooked import HookedLM
from sweep.tiny.train_sae import TL_KWARGS


def chunk_stream(ids: list[int] | torch.Tensor, context_size: int, bos_id: int) -> torch.Tensor:
    """Split a token stream into non-overlapping BOS-prefixed rows [n, context_size]."""
    ids = torch.as_tensor(ids, dtype=torch.long)
    n = context_size - 1
    rows = ids[: (ids.numel() // n) * n].view(-1, n)
    bos = torch.full((rows.shape[0], 1), bos_id, dtype=torch.long)
    return torch.cat([bos, rows], dim=1)


@torch.no_grad()
def lm_perplexity(model: Any, chunks: torch.Tensor, batch_size: int = 32) -> float:
    """exp(mean next-token cross-entropy) over all targets except the BOS position."""
    model.eval()
    total, count = 0.0, 0
    for i in range(0, chunks.shape[0], batch_size):
        batch = chunks[i : i + batch_size]
        logits = model(input_ids=batch).logits.double()
        ce = torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, logits.shape[-1]),
            batch[:, 1:].reshape(-1),
            reduction="sum",
        )
        total += ce.item()
        count += batch[:, 1:].numel()
    return math.exp(total / count)


def unigram_perplexity(train_counts: torch.Tensor, eval_ids: list[int] | torch.Tensor) -> float:
    """Perplexity on eval ids of an add-one-smoothed unigram model fitted on train token counts
    (one per vocabulary entry)."""
    counts = train_counts.double() + 1.0
    logp = torch.log(counts / counts.sum())
    ev = torch.as_tensor(eval_ids, dtype=torch.long).flatten()
    return math.exp(-logp[ev].mean().item())


@torch.no_grad()
def resid_activations(
    model: Any, chunks: torch.Tensor, layer: int, batch_size: int = 32
) -> torch.Tensor:
    """Output of block `layer` (TL `blocks.{layer}.hook_resid_post`), BOS dropped: [N, d]."""
    return resid_activations_layers(model, chunks, [layer], batch_size)[layer]


@torch.no_grad()
def resid_activations_layers(
    model: Any, chunks: torch.Tensor, layers: list[int], batch_size: int = 32
) -> dict[int, torch.Tensor]:
    """`resid_activations` at several layers from one forward per batch: layer -> [N, d].

    Read where a job reads them (`HookedLM.run` at blocks.L.hook_resid_post: each block's own
    output, unprocessed as the SAEs' TransformerLens settings ask), not from `hidden_states`:
    HF's last hidden state is after the final layer norm. Written into tensors allocated once
    (no list of batches to concatenate), so gathering every layer of a 2M-token sample peaks at
    the activations' own size."""
    lm = HookedLM.wrap(model, TL_KWARGS)
    hooks = {layer: f"blocks.{layer}.hook_resid_post" for layer in layers}
    n_tok = chunks.shape[0] * (chunks.shape[1] - 1)
    out = {layer: torch.empty(n_tok, lm.d_model) for layer in layers}
    pos = 0
    for i in range(0, chunks.shape[0], batch_size):
        batch = chunks[i : i + batch_size]
        acts, _ = lm.run(batch, list(hooks.values()))
        n = batch.shape[0] * (batch.shape[1] - 1)
        for layer, hook in hooks.items():
            out[layer][pos : pos + n] = acts[hook][:, 1:].reshape(n, -1)
        pos += n
    return out


@torch.no_grad()
def sae_metrics(sae: Any, acts: torch.Tensor, batch_size: int = 4096) -> dict[str, float]:
    """Explained variance, mean L0 and dead-feature fraction of `sae` on activations [N, d]."""
    sse, l0_sum = 0.0, 0.0
    fired = torch.zeros(sae.cfg.d_sae, dtype=torch.bool)
    for i in range(0, acts.shape[0], batch_size):
        x = acts[i : i + batch_size]
        f = sae.encode(x)
        sse += (x - sae.decode(f)).double().pow(2).sum().item()
        active = f > 0
        l0_sum += active.sum().item()
        fired |= active.any(0).cpu()
    sst = (acts.double() - acts.double().mean(0)).pow(2).sum().item()
    return {
        "explained_variance": 1.0 - sse / sst,
        "mean_l0": l0_sum / acts.shape[0],
        "dead_fraction": 1.0 - fired.float().mean().item(),
        "n_tokens": int(acts.shape[0]),
    }


def excess_kurtosis(values: torch.Tensor) -> float:
    """Fisher (excess) kurtosis of all entries (scipy): 0 for a Gaussian, more for heavy tails."""
    return float(scipy.stats.kurtosis(values.detach().double().flatten().numpy(), fisher=True))


@torch.no_grad()
def lm_properties(model: Any, chunks: torch.Tensor, batch_size: int = 32) -> dict[str, Any]:
    """Heavy tails of the LM: weight kurtosis of the block matrices, residual outliers per layer.

    Per residual stream (after each block): max |x| / mean |x| over held-out tokens and
    dimensions, and the number of outlier dimensions (mean |x| more than 3 standard deviations
    above the mean over dimensions, as in Kovaleva et al. 2021).
    """
    kurt = [
        excess_kurtosis(p)
        for name, p in model.named_parameters()
        if p.dim() == 2 and ".layers." in name
    ]
    model.eval()
    n_layers = model.config.num_hidden_layers
    abs_sum = torch.zeros(n_layers, model.config.hidden_size, dtype=torch.float64)
    abs_max = torch.zeros(n_layers, dtype=torch.float64)
    count = 0
    for i in range(0, chunks.shape[0], batch_size):
        hs = model(input_ids=chunks[i : i + batch_size], output_hidden_states=True).hidden_states
        for layer in range(n_layers):
            x = hs[layer + 1][:, 1:].double().abs().flatten(0, 1)
            abs_sum[layer] += x.sum(0)
            abs_max[layer] = torch.maximum(abs_max[layer], x.max())
        count += chunks[i : i + batch_size, 1:].numel()
    dim_mean = abs_sum / count
    outliers = dim_mean > dim_mean.mean(1, keepdim=True) + 3 * dim_mean.std(1, keepdim=True)
    return {
        "weight_excess_kurtosis_mean": sum(kurt) / len(kurt),
        "weight_excess_kurtosis_max": max(kurt),
        "resid_max_over_mean_abs": (abs_max / dim_mean.mean(1)).tolist(),
        "resid_outlier_dims": outliers.sum(1).tolist(),
    }
