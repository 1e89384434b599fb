"""Build the compressed variants a job measures: one model, or a matched pair."""

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from omegaconf import DictConfig
from transformers import PreTrainedModel

from sweep.compressors.matched import MatchResult, match_sparsity
from sweep.compressors.registry import (
    COMPRESSORS,
    compress_model,
    restore_targets,
    snapshot_targets,
)
from sweep.hooked import HookedLM
from sweep.perplexity import chunked_loss


@dataclass
class Variants:
    """Compressed models by name; `primary` is the one the job's features.parquet describes."""

    models: dict[str, HookedLM]
    primary: str
    n_matrices: int
    sparsity: float | None = None
    match: MatchResult | None = None
    info: dict = field(default_factory=dict)


def calibration_ppl(model: PreTrainedModel, tokens: torch.Tensor, batch_size: int) -> float:
    """Perplexity of the HF model (as it runs) over independent calibration sequences."""
    return chunked_loss(HookedLM(model, centre=False), tokens, batch_size).perplexity


def build_variants(
    cfg: DictConfig,
    hf_model: PreTrainedModel,
    hooked: Callable[[PreTrainedModel], HookedLM],
    calibration: torch.Tensor,
    batch_size: int,
) -> Variants:
    """Compress `hf_model` (in place) into the job's variant(s), each wrapped by `hooked`.

    For a matched pair the reference method compresses a copy of the FP model (it may replace
    modules by its library's), and the pruning search restores and re-prunes the original.
    """
    comp = cfg.compression
    if comp.match is None:
        sparsity = cfg.sparsity if COMPRESSORS.get(comp.name).prunes else None
        n = compress_model(hf_model, comp, cfg.bits, cfg.sparsity, calibration=calibration)
        return Variants(
            models={comp.name: hooked(hf_model)}, primary=comp.name, n_matrices=n, sparsity=sparsity
        )

    reference = copy.deepcopy(hf_model)
    n = compress_model(
        reference, comp, cfg.bits, cfg.sparsity, method=comp.match, calibration=calibration
    )
    target = calibration_ppl(reference, calibration, batch_size)
    snapshot = snapshot_targets(hf_model, comp)

    def ppl_at(sparsity: float) -> float:
        restore_targets(hf_model, snapshot)
        compress_model(hf_model, comp, cfg.bits, sparsity)
        return calibration_ppl(hf_model, calibration, batch_size)

    match = match_sparsity(ppl_at, target, comp.rel_tol, comp.max_steps, comp.max_sparsity)
    restore_targets(hf_model, snapshot)
    compress_model(hf_model, comp, cfg.bits, match.sparsity)
    return Variants(
        models={comp.name: hooked(hf_model), comp.match: hooked(reference)},
        primary=comp.name,
        n_matrices=n,
        sparsity=match.sparsity,
        match=match,
    )
