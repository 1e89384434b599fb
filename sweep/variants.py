"""Build the compressed variants a job measures: one model, or a matched pair."""

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from omegaconf import DictConfig
from transformer_lens import HookedTransformer
from transformers import PreTrainedModel

from sweep.compress import compress_model, restore_targets, snapshot_targets
from sweep.matched import MatchResult, match_sparsity
from sweep.perplexity import chunked_loss


@dataclass
class Variants:
    """Compressed models by name; `primary` is the one the job's features.parquet describes."""

    models: dict[str, HookedTransformer]
    primary: str
    n_matrices: int
    sparsity: float | None = None
    match: MatchResult | None = None
    info: dict = field(default_factory=dict)


def calibration_ppl(hf_model: PreTrainedModel, tokens: torch.Tensor, batch_size: int) -> float:
    """Perplexity of the HF model over independent calibration sequences."""
    device = next(hf_model.parameters()).device
    return chunked_loss(lambda t: hf_model(t.to(device)).logits, tokens, batch_size).perplexity


def build_variants(
    cfg: DictConfig,
    hf_model: PreTrainedModel,
    to_tl: Callable[[PreTrainedModel], HookedTransformer],
    calibration: torch.Tensor,
    batch_size: int,
) -> Variants:
    """Compress `hf_model` (in place) into the job's variant(s), each converted by `to_tl`."""
    comp = cfg.compression
    if comp.match is None:
        sparsity = cfg.sparsity if comp.name.startswith("magnitude") else None
        n = compress_model(hf_model, comp, cfg.bits, cfg.sparsity)
        return Variants(
            models={comp.name: to_tl(hf_model)}, primary=comp.name, n_matrices=n, sparsity=sparsity
        )

    snapshot = snapshot_targets(hf_model, comp)
    n = compress_model(hf_model, comp, cfg.bits, method=comp.match)
    reference = to_tl(hf_model)
    target = calibration_ppl(hf_model, calibration, batch_size)

    def ppl_at(sparsity: float) -> float:
        restore_targets(hf_model, snapshot)
        compress_model(hf_model, comp, cfg.bits, sparsity)
        return calibration_ppl(hf_model, calibration, batch_size)

    match = match_sparsity(ppl_at, target, comp.rel_tol, comp.max_steps, comp.max_sparsity)
    restore_targets(hf_model, snapshot)
    compress_model(hf_model, comp, cfg.bits, match.sparsity)
    return Variants(
        models={comp.name: to_tl(hf_model), comp.match: reference},
        primary=comp.name,
        n_matrices=n,
        sparsity=match.sparsity,
        match=match,
    )
