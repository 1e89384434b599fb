"""One streaming pass over the token set: SAE codes, per-feature statistics and loss together."""

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from sae_lens import SAE
from tqdm.auto import tqdm

from sweep.contexts import Contexts
from sweep.errors import QfeatError
from sweep.hooked import HookedLM
from sweep.reference import Reference, SparseCodes
from sweep.sparse import NonzeroFinder, Pairs
from sweep.stats import PairStats
from sweep.topk import row_topk

if TYPE_CHECKING:  # sweep.saefit imports this module's loss helpers
    from sweep.saefit import FitTotals

# Log-probs are taken a block of positions at a time, about this many entries (16 MB) per block.
BLOCK_ENTRIES = 1 << 22


@dataclass
class LossTotals:
    """Summed next-token cross-entropy (nats, float64) and the number of predicted tokens."""

    total: float = 0.0
    count: int = 0

    def add(self, nll: torch.Tensor) -> None:
        """Accumulate a tensor of per-token negative log-likelihoods."""
        self.total += float(nll.to(torch.float64).sum())
        self.count += nll.numel()

    @property
    def mean(self) -> float:
        """Mean cross-entropy per predicted token."""
        return self.total / self.count

    @property
    def perplexity(self) -> float:
        """exp(mean next-token cross-entropy)."""
        return float(torch.tensor(self.mean, dtype=torch.float64).exp())


def next_token_logprobs(logits: torch.Tensor) -> torch.Tensor:
    """Log-probabilities of the next token at every predicting position, in float32.

    Taken over the whole (contiguous) logits and then sliced: the same values as over the
    sliced logits, without first copying them.
    """
    return torch.log_softmax(logits.float(), dim=-1)[:, :-1]


def next_token_nll(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Per-position NLL of tokens[:, 1:] under logits[:, :-1], in float32 (log-probs taken
    a block at a time: `logprob_blocks`)."""
    nll = logits.new_empty(tokens.shape[0], tokens.shape[1] - 1, dtype=torch.float32)
    for seq, pos, _, block_nll in logprob_blocks(logits, tokens):
        nll[seq, pos] = block_nll
    return nll


def logprob_blocks(
    logits: torch.Tensor, tokens: torch.Tensor
) -> Iterator[tuple[int, slice, torch.Tensor, torch.Tensor]]:
    """(sequence, positions, next-token log-probs [positions, vocab], their NLL) over the
    predicting positions of a batch, a block of positions at a time.

    The log-softmax is taken row by row, so its values equal `next_token_logprobs`'; but no
    [tokens, vocab] log-prob tensor is ever allocated, and each block is still in cache when
    its NLL, top-k or KL is read from it.
    """
    seq_len, vocab = logits.shape[1], logits.shape[2]
    block = max(1, BLOCK_ENTRIES // vocab)
    for i in range(logits.shape[0]):
        for start in range(0, seq_len - 1, block):
            pos = slice(start, min(start + block, seq_len - 1))
            logprobs = torch.log_softmax(logits[i, pos].float(), dim=-1)
            targets = tokens[i, pos.start + 1 : pos.stop + 1, None]
            yield i, pos, logprobs, -logprobs.gather(-1, targets).squeeze(-1)


def hooked_forward(
    model: HookedLM, tokens: torch.Tensor, hooks: list[str]
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Logits and the activations at `hooks` from a single forward pass of the HF model."""
    return model.run(tokens, hooks)


def require_finite(tensor: torch.Tensor, where: str, side: str, batch: int) -> None:
    """Refuse to measure NaN/inf: a result built on them would look valid and be wrong."""
    if not torch.isfinite(tensor).all():
        raise QfeatError(f"non-finite values at {where} in the {side} model (batch {batch})")


def encode_codes(sae: SAE, acts: torch.Tensor, first: int) -> torch.Tensor:
    """SAE codes of [batch, pos, d_in] activations from position `first` on: [tokens, d_sae]."""
    x = acts[:, first:].to(sae.W_enc.dtype)
    return sae.encode(x.reshape(-1, x.shape[-1]))


def batches(tokens: torch.Tensor, batch_size: int) -> Iterator[torch.Tensor]:
    """Consecutive row blocks of the token set."""
    for start in range(0, len(tokens), batch_size):
        yield tokens[start : start + batch_size]


def topk_logprobs(logprobs: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k next-token log-probabilities (sorted descending) and their int32 ids."""
    values, ids = row_topk(logprobs, k)
    return values, ids.to(torch.int32)


def bucketed_kl(
    fp_top: torch.Tensor, fp_ids: torch.Tensor, q_logprobs: torch.Tensor
) -> torch.Tensor:
    """KL(P_fp ‖ P_q) over the FP top-k tokens plus one bucket holding all other tokens.

    By the data-processing inequality this is a lower bound of the full-vocabulary KL, and it is
    exact when k covers the vocabulary. It needs only the FP top-k, so FP logits are never kept.
    """
    q = q_logprobs.gather(-1, fp_ids.long())
    p_top = fp_top.exp()
    head = (p_top * (fp_top - q)).sum(-1)
    tail_p = (1 - p_top.sum(-1)).clamp_min(0)
    tail_q = (1 - q.exp().sum(-1)).clamp_min(1e-30)
    return head + torch.xlogy(tail_p, tail_p) - torch.xlogy(tail_p, tail_q)


def kl_method(k: int, vocab: int) -> str:
    """How the reported KL was computed."""
    if k >= vocab:
        return f"exact (top-{k} covers the {vocab}-token vocabulary)"
    return f"top-{k} + tail bucket (lower bound of the exact KL; vocabulary {vocab})"


def _progress(iterable, total: int, desc: str, progress: bool):
    return tqdm(iterable, total=total, desc=desc, disable=None if progress else True)


@torch.no_grad()
def compute_reference(
    fp_model: HookedLM,
    saes: dict[str, SAE],
    tokens: torch.Tensor,
    batch_size: int,
    first: int,
    kl_top_k: int,
    progress: bool = True,
    fit: "FitTotals | None" = None,
) -> Reference:
    """One FP pass: sparse SAE codes per hook, per-token loss and top-k log-probs; with `fit`,
    the SAE-fit metrics of its first sequences from the same forward (`Reference.sae_fit`)."""
    device = fp_model.device
    hooks = list(saes)
    codes: dict[str, list[SparseCodes]] = {hook: [] for hook in hooks}
    finder = NonzeroFinder()  # one scan mask for every SAE and batch
    nll, top, ids = [], [], []
    n_batches = (len(tokens) + batch_size - 1) // batch_size
    for i, batch in enumerate(_progress(batches(tokens, batch_size), n_batches, "FP", progress)):
        batch = batch.to(device)
        acts, logits = hooked_forward(fp_model, batch, hooks)
        for hook in hooks:
            require_finite(acts[hook], hook, "full-precision", i)
        for hook, sae in saes.items():
            dense = encode_codes(sae, acts[hook], first)
            codes[hook].append(SparseCodes.from_dense(dense, finder))
            if fit is not None:
                fit.fold_sae(fp_model, hook, batch, i * batch_size, acts[hook], dense)
        k = min(kl_top_k, logits.shape[-1])
        batch_nll = logits.new_empty(batch.shape[0], batch.shape[1] - 1, dtype=torch.float32)
        values = batch_nll.new_empty(*batch_nll.shape, k)
        index = torch.empty(values.shape, dtype=torch.int32, device=device)
        for seq, pos, logprobs, block_nll in logprob_blocks(logits, batch):
            batch_nll[seq, pos] = block_nll
            values[seq, pos], index[seq, pos] = topk_logprobs(logprobs, k)
        require_finite(batch_nll, "the next-token loss", "full-precision", i)
        nll.append(batch_nll.cpu())
        top.append(values.cpu())
        ids.append(index.cpu())
        if fit is not None:
            fit.fold_loss(batch, i * batch_size, batch_nll)
    return Reference(
        codes={hook: SparseCodes.concat(parts) for hook, parts in codes.items()},
        nll=torch.cat(nll),
        topk_logprobs=torch.cat(top),
        topk_ids=torch.cat(ids),
        sliding_ppl=None,
        sae_fit=fit.metrics() if fit is not None else {},
    )


@dataclass
class VariantMeasurement:
    """What one compressed variant produced against the FP reference."""

    stats: dict[str, PairStats]
    loss: LossTotals = field(default_factory=LossTotals)
    kl: LossTotals = field(default_factory=LossTotals)
    contexts: dict[str, Contexts] = field(default_factory=dict)
    nll: torch.Tensor | None = None  # per-token loss [n_sequences, seq_len − 1], on CPU


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
    fits: "dict[str, FitTotals] | None" = None,
) -> Measurement:
    """Run every variant on the reference's tokens; stream paired statistics, loss, KL and,
    when `contexts_k` > 0, each feature's top-k contexts by FP and by compressed activation;
    `fits` (by variant name) take the SAE-fit metrics of their first sequences on the way.

    Compressed codes are made sparse once per batch and merged with the stored sparse FP codes
    (sweep.sparse), so statistics and contexts cost O(nonzeros), never O(tokens × d_sae).
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
        if contexts_k:
            result.contexts = {
                h: Contexts.empty(s.cfg.d_sae, contexts_k, device) for h, s in saes.items()
            }
        nll = []
        bar = _progress(batches(tokens, batch_size), n_batches, f"measure {name}", progress)
        for i, batch in enumerate(bar):
            lo, hi = i * batch_size, i * batch_size + len(batch)
            batch = batch.to(device)
            acts, logits = hooked_forward(model, batch, hooks)
            for hook in hooks:
                require_finite(acts[hook], hook, f"compressed ({name})", i)
            for hook, sae in saes.items():
                q = encode_codes(sae, acts[hook], first)
                fp_flat, fp_values = reference.codes[hook].flat(
                    lo * rows_per_seq, hi * rows_per_seq
                )
                pairs = Pairs.merge(fp_flat.to(device), fp_values.to(device), q, finder)
                result.stats[hook].add(pairs)
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
