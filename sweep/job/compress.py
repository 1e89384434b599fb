"""The compress stage: the compressed variant(s) a job measures, one model or a matched pair."""

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel

from sweep.compressors.gguf import GGUFArtifact, quantize_model
from sweep.compressors.matched import match_sparsity
from sweep.compressors.registry import (
    bits_per_weight,
    compress_model,
    restore_targets,
    snapshot_targets,
)
from sweep.config.compression import (
    CompressionConfig,
    GGUFConfig,
    MagnitudeConfig,
    MagnitudeMatchedConfig,
)
from sweep.inputs.deployed import DeployedLM
from sweep.inputs.hooked import HookedLM
from sweep.inputs.llamacpp import threads_for
from sweep.passes.perplexity import chunked_loss
from sweep.results.summary import MatchResult

# Wraps a (compressed) HF model for the measurement pass.
Hook = Callable[[PreTrainedModel], HookedLM]
DEPLOYED = "llama.cpp"  # the variant that is llama.cpp's own forward of a GGUF file


@dataclass
class Variants:
    """Compressed models by name; `primary` is the one the job's features.parquet describes,
    `baseline` (a matched pair only) the partner it is compared with; `gguf` the file a GGUF
    variant holds, `deployed` the name of its llama.cpp variant when that runs too."""

    models: dict[str, HookedLM | DeployedLM]
    primary: str
    n_matrices: int
    sparsity: float | None = None
    match: MatchResult | None = None
    baseline: str | None = None
    gguf: GGUFArtifact | None = None
    deployed: str | None = None
    bits_per_weight: float | None = None


def calibration_ppl(model: PreTrainedModel, tokens: torch.Tensor, batch_size: int) -> float:
    """Perplexity of the HF model (as it runs) over independent calibration sequences."""
    return chunked_loss(HookedLM(model, centre=False), tokens, batch_size).perplexity


def build_variants(
    method: CompressionConfig,
    hf_model: PreTrainedModel,
    hooked: Hook,
    calibration: torch.Tensor,
    batch_size: int,
) -> Variants:
    """Compress `hf_model` (in place) into the job's variant(s), each wrapped by `hooked`."""
    if isinstance(method, MagnitudeMatchedConfig):
        return matched_pair(method, hf_model, hooked, calibration, batch_size)
    if isinstance(method, GGUFConfig):
        artifact = quantize_model(hf_model, method, calibration)
        return gguf_variant(method.name, hf_model, hooked, artifact)
    bits = bits_per_weight(hf_model, method)  # before any layer is replaced by a library's
    n = compress_model(hf_model, method, calibration)
    return Variants(
        models={method.name: hooked(hf_model)},
        primary=method.name,
        n_matrices=n,
        sparsity=getattr(method, "sparsity", None),
        bits_per_weight=bits,
    )


def matched_pair(
    method: MagnitudeMatchedConfig,
    hf_model: PreTrainedModel,
    hooked: Hook,
    calibration: torch.Tensor,
    batch_size: int,
) -> Variants:
    """The baseline method compresses a copy of the FP model (it may replace modules by its
    library's); the pruning search restores and re-prunes the original until its calibration
    perplexity matches the baseline's."""
    baseline = copy.deepcopy(hf_model)
    n = compress_model(baseline, method.baseline, calibration)
    target = calibration_ppl(baseline, calibration, batch_size)
    snapshot = snapshot_targets(hf_model, method)

    def prune(sparsity: float) -> None:
        restore_targets(hf_model, snapshot)
        pruner = MagnitudeConfig(
            sparsity=sparsity, scope=method.scope, targets=method.targets, blocks=method.blocks
        )
        compress_model(hf_model, pruner)

    def ppl_at(sparsity: float) -> float:
        prune(sparsity)
        return calibration_ppl(hf_model, calibration, batch_size)

    match = match_sparsity(ppl_at, target, method.rel_tol, method.max_steps, method.max_sparsity)
    prune(match.sparsity)
    return Variants(
        models={method.name: hooked(hf_model), method.baseline.name: hooked(baseline)},
        primary=method.name,
        n_matrices=n,
        sparsity=match.sparsity,
        match=match,
        baseline=method.baseline.name,
    )


def gguf_variant(
    name: str, hf_model: PreTrainedModel, hooked: Hook, artifact: GGUFArtifact
) -> Variants:
    """The HF model holding a GGUF file's dequantized weights, as the primary variant."""
    return Variants(
        models={name: hooked(hf_model)},
        primary=name,
        n_matrices=artifact.n_quantized,
        gguf=artifact,
    )


def add_deployed(variants: Variants, hooks: list[str], seq_len: int) -> None:
    """Measure llama.cpp's own forward of the variant's GGUF file beside it (same tokens, its
    residual at the SAEs' hooks, its logits)."""
    primary = variants.models[variants.primary]
    variants.models[DEPLOYED] = DeployedLM(
        variants.gguf.path,
        hooks,
        primary.n_layers,
        seq_len,
        primary.centre,
        threads_for(primary.model),
    )
    variants.deployed = DEPLOYED
