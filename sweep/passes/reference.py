"""The FP reference: what the compressed pass needs from the full-precision model, and the one
FP pass that computes it (sparse SAE codes per hook, per-token loss, top-k log-probs for KL).
Shared by every job of a sweep through sweep.passes.reference_cache."""

from dataclasses import asdict, dataclass, field

import torch
from sae_lens import SAE

from sweep.inputs.hooked import HookedLM
from sweep.passes.logprobs import (
    batches,
    encode_codes,
    logprob_blocks,
    require_finite,
    topk_logprobs,
)
from sweep.passes.progress import progress_bar
from sweep.passes.saefit import FitTotals
from sweep.passes.sparse import NonzeroFinder
from sweep.results.summary import SaeFit


@dataclass
class SparseCodes:
    """One SAE's FP codes over all measured tokens, in CSR form (rows = tokens, seq-major)."""

    values: torch.Tensor
    features: torch.Tensor
    row_ptr: torch.Tensor
    d_sae: int

    @classmethod
    def from_dense(cls, codes: torch.Tensor, finder: NonzeroFinder | None = None) -> "SparseCodes":
        """Compress one dense [rows, d_sae] batch, keeping every nonzero exactly."""
        flat = (finder or NonzeroFinder())(codes)
        n_rows, d_sae = codes.shape
        row_ptr = torch.searchsorted(flat, torch.arange(n_rows + 1, device=flat.device) * d_sae)
        features = (flat % d_sae).to(torch.int32)
        return cls(codes.reshape(-1)[flat].cpu(), features.cpu(), row_ptr.cpu(), d_sae)

    @classmethod
    def concat(cls, parts: list["SparseCodes"]) -> "SparseCodes":
        """Stack batches' rows in order."""
        offsets = torch.tensor([0] + [int(p.row_ptr[-1]) for p in parts[:-1]]).cumsum(0)
        row_ptr = torch.cat(
            [torch.zeros(1, dtype=torch.int64)]
            + [p.row_ptr[1:] + off for p, off in zip(parts, offsets, strict=True)]
        )
        values = torch.cat([p.values for p in parts])
        features = torch.cat([p.features for p in parts])
        return cls(values, features, row_ptr, parts[0].d_sae)

    def flat(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows start..stop as (flat indices into a dense [stop − start, d_sae] batch, values)."""
        lo, hi = int(self.row_ptr[start]), int(self.row_ptr[stop])
        counts = self.row_ptr[start + 1 : stop + 1] - self.row_ptr[start:stop]
        rows = torch.repeat_interleave(torch.arange(stop - start), counts)
        return rows * self.d_sae + self.features[lo:hi], self.values[lo:hi]


@dataclass
class Reference:
    """FP codes per hook, per-token FP loss, top-k FP log-probs for KL, FP sliding perplexity."""

    codes: dict[str, SparseCodes]
    nll: torch.Tensor
    topk_logprobs: torch.Tensor
    topk_ids: torch.Tensor
    sliding_ppl: float | None
    sae_fit: dict[str, SaeFit] = field(default_factory=dict)  # per hook, on the first sequences

    def to_tensors(self) -> tuple[dict[str, torch.Tensor], dict]:
        """Flat tensors for safetensors and the JSON-able rest."""
        tensors = {"nll": self.nll, "topk_logprobs": self.topk_logprobs, "topk_ids": self.topk_ids}
        for i, c in enumerate(self.codes.values()):
            tensors |= {
                f"codes{i}.values": c.values,
                f"codes{i}.features": c.features,
                f"codes{i}.row_ptr": c.row_ptr,
            }
        hooks = {hook: c.d_sae for hook, c in self.codes.items()}
        fit = {hook: asdict(f) for hook, f in self.sae_fit.items()}
        return tensors, {"hooks": hooks, "sliding_ppl": self.sliding_ppl, "sae_fit": fit}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], meta: dict) -> "Reference":
        """Inverse of to_tensors."""
        codes = {
            hook: SparseCodes(
                tensors[f"codes{i}.values"],
                tensors[f"codes{i}.features"],
                tensors[f"codes{i}.row_ptr"],
                d_sae,
            )
            for i, (hook, d_sae) in enumerate(meta["hooks"].items())
        }
        return cls(
            codes,
            tensors["nll"],
            tensors["topk_logprobs"],
            tensors["topk_ids"],
            meta["sliding_ppl"],
            {hook: SaeFit(**f) for hook, f in meta["sae_fit"].items()},
        )


@torch.no_grad()
def compute_reference(
    fp_model: HookedLM,
    saes: dict[str, SAE],
    tokens: torch.Tensor,
    batch_size: int,
    first: int,
    kl_top_k: int,
    progress: bool = True,
    fit: FitTotals | None = None,
) -> Reference:
    """One FP pass: sparse SAE codes per hook, per-token loss and top-k log-probs; with `fit`,
    the SAE-fit metrics of its first sequences from the same forward (`Reference.sae_fit`)."""
    device = fp_model.device
    hooks = list(saes)
    codes: dict[str, list[SparseCodes]] = {hook: [] for hook in hooks}
    finder = NonzeroFinder()  # one scan mask for every SAE and batch
    nll, top, ids = [], [], []
    n_batches = (len(tokens) + batch_size - 1) // batch_size
    for i, batch in enumerate(progress_bar(batches(tokens, batch_size), n_batches, "FP", progress)):
        batch = batch.to(device)
        acts, logits = fp_model.run(batch, hooks)
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
