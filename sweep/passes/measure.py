"""The compressed pass: every variant on the FP reference's tokens, streaming paired SAE
statistics, loss, KL and top contexts against the reference, O(nonzeros) per batch."""

from dataclasses import dataclass, field

import torch
from sae_lens import SAE

from sweep.inputs.hooked import HookedLM
from sweep.passes.blocks import BlockMoments
from sweep.passes.contexts import Contexts
from sweep.passes.logprobs import (
    LossTotals,
    batches,
    bucketed_kl,
    encode_codes,
    logprob_blocks,
    require_finite,
)
from sweep.passes.progress import progress_bar
from sweep.passes.reference import Reference
from sweep.passes.saefit import FitTotals
from sweep.passes.sparse import NonzeroFinder, Pairs
from sweep.passes.stats import PairStats


@dataclass
class VariantMeasurement:
    """What one compressed variant produced against the FP reference."""

    stats: dict[str, PairStats]
    loss: LossTotals = field(default_factory=LossTotals)
    kl: LossTotals = field(default_factory=LossTotals)
    contexts: dict[str, Contexts] = field(default_factory=dict)
    nll: torch.Tensor | None = None  # per-token loss [n_sequences, seq_len − 1], on CPU
    blocks: dict[str, BlockMoments] = field(default_factory=dict)  # per hook, when asked


@dataclass
class Measurement:
    """The FP loss and, per compressed variant, paired SAE statistics, loss and KL."""

    fp_loss: LossTotals
    variants: dict[str, VariantMeasurement]


@torch.no_grad()
def measure(
    reference: Reference,
    variants: dict[str, HookedLM],
    saes: dict[str, SAE],
    tokens: torch.Tensor,
    batch_size: int,
    first: int,
    progress: bool = True,
    contexts_k: int = 0,
    fits: dict[str, FitTotals] | None = None,
    sequence_blocks: torch.Tensor | None = None,
) -> Measurement:
    """Run every variant on the reference's tokens; stream paired statistics, loss, KL and,
    when `contexts_k` > 0, each feature's top-k contexts by FP and by compressed activation;
    `fits` (by variant name) take the SAE-fit metrics of their first sequences on the way;
    `sequence_blocks` (the block of each sequence) adds per-block statistics for the bootstrap.

    Compressed codes are made sparse once per batch and merged with the stored sparse FP codes
    (sweep.passes.sparse), so statistics and contexts cost O(nonzeros), never O(tokens × d_sae).
    """
    hooks = list(saes)
    fp_loss = LossTotals()
    fp_loss.add(reference.nll)
    out = Measurement(fp_loss=fp_loss, variants={})
    rows_per_seq = tokens.shape[1] - first
    n_batches = (len(tokens) + batch_size - 1) // batch_size
    finder = NonzeroFinder()  # one scan mask for every SAE, batch and variant
    for name, model in variants.items():
        device = model.device
        fit = (fits or {}).get(name)
        result = VariantMeasurement(
            stats={h: PairStats.zeros(s.cfg.d_sae, device=device) for h, s in saes.items()}
        )
        if sequence_blocks is not None:
            n_blocks = int(sequence_blocks.max()) + 1
            result.blocks = {
                h: BlockMoments.zeros(n_blocks, s.cfg.d_sae, device) for h, s in saes.items()
            }
            row_blocks = sequence_blocks.repeat_interleave(rows_per_seq).to(device)
        if contexts_k:
            result.contexts = {
                h: Contexts.empty(s.cfg.d_sae, contexts_k, device) for h, s in saes.items()
            }
        nll = []
        bar = progress_bar(batches(tokens, batch_size), n_batches, f"measure {name}", progress)
        for i, batch in enumerate(bar):
            lo, hi = i * batch_size, i * batch_size + len(batch)
            batch = batch.to(device)
            acts, logits = model.run(batch, hooks)
            for hook in hooks:
                require_finite(acts[hook], hook, f"compressed ({name})", i)
            for hook, sae in saes.items():
                q = encode_codes(sae, acts[hook], first)
                fp_flat, fp_values = reference.codes[hook].flat(
                    lo * rows_per_seq, hi * rows_per_seq
                )
                pairs = Pairs.merge(fp_flat.to(device), fp_values.to(device), q, finder)
                result.stats[hook].add(pairs)
                if result.blocks:
                    result.blocks[hook].add(
                        pairs, row_blocks[lo * rows_per_seq : hi * rows_per_seq]
                    )
                if contexts_k:
                    result.contexts[hook].add(pairs, lo * rows_per_seq)
                if fit is not None:
                    fit.fold_sae(model, hook, batch, lo, acts[hook], q)
            ref_top = reference.topk_logprobs[lo:hi].to(device)
            ref_ids = reference.topk_ids[lo:hi].to(device)
            batch_nll = logits.new_empty(batch.shape[0], batch.shape[1] - 1, dtype=torch.float32)
            batch_kl = torch.empty_like(batch_nll)
            for seq, pos, logprobs, block_nll in logprob_blocks(logits, batch):
                batch_nll[seq, pos] = block_nll
                batch_kl[seq, pos] = bucketed_kl(ref_top[seq, pos], ref_ids[seq, pos], logprobs)
            require_finite(batch_nll, "the next-token loss", f"compressed ({name})", i)
            result.loss.add(batch_nll)
            nll.append(batch_nll.cpu())
            result.kl.add(batch_kl)
            if fit is not None:
                fit.fold_loss(batch, lo, batch_nll)
        result.nll = torch.cat(nll)
        out.variants[name] = result
    return out
