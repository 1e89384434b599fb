"""The matched-noise control: on every target matrix, seeded Gaussian noise scaled so that the
matrix's error norm ‖W' − W‖_F equals the one the matched method makes there. Any damage pattern
a method shares with its matched noise is not specific to the method."""

import logging

import torch
from torch import nn

from sweep.compressors.registry import (
    COMPRESSORS,
    compress_model,
    restore_targets,
    selected_linears,
    snapshot_targets,
)
from sweep.config.compression import NoiseConfig

log = logging.getLogger(__name__)


def matched_error_norms(model: nn.Module, cfg: NoiseConfig) -> dict[str, float]:
    """‖W_match − W‖_F of every target matrix, in float64: the matched method compresses the
    model in place, its errors are read against a snapshot, and the FP weights are restored."""
    snapshot = snapshot_targets(model, cfg)
    compress_model(model, cfg.match)
    norms = {
        name: float((layer.weight.detach().cpu().double() - snapshot[name].double()).norm())
        for name, layer in selected_linears(model, cfg)
    }
    restore_targets(model, snapshot)
    return norms


def scaled_noise(shape: torch.Size, norm: float, generator: torch.Generator) -> torch.Tensor:
    """Standard Gaussian noise of `shape` (float64, drawn on the CPU from `generator`, so the
    same seed gives the same noise on any device) rescaled to Frobenius norm `norm`."""
    noise = torch.randn(shape, generator=generator, dtype=torch.float64)
    return noise * (norm / noise.norm())


def add_matched_noise(model: nn.Module, cfg: NoiseConfig, _calibration) -> None:
    """Add to each target weight noise of the norm the matched method's error has there, one
    matrix after another from one generator seeded with `cfg.seed`."""
    norms = matched_error_norms(model, cfg)
    generator = torch.Generator().manual_seed(cfg.seed)
    worst = 0.0
    with torch.no_grad():
        for name, layer in selected_linears(model, cfg):
            weight = layer.weight
            before = weight.detach().double()
            noise = scaled_noise(weight.shape, norms[name], generator).to(weight.device)
            weight.copy_((before + noise).to(weight.dtype))
            realised = float((weight.double() - before).norm())
            worst = max(worst, abs(realised - norms[name]) / max(norms[name], 1e-300))
    log.info(
        "noise matched to %s on %d matrices (error norms within %.1e, relative)",
        cfg.match.name,
        len(norms),
        worst,
    )


COMPRESSORS.register("noise")(add_matched_noise)
