"""Mixed precision: each part of a `compression=mixed` config at its own bit-width.

RTN quantizes each matrix on its own, so the parts are applied one after another; GPTQ runs
once, with one compressed-tensors scheme per part, so every part is calibrated in the same
sequential pass as a deployed mixed-precision GPTQ model is.
"""

import torch
from torch import nn

from sweep.base.errors import QfeatError
from sweep.compressors.llmc import apply_oneshot
from sweep.compressors.registry import COMPRESSORS, selected_linears
from sweep.config.compression import MixedConfig


def apply_mixed(model: nn.Module, cfg: MixedConfig, calibration: torch.Tensor | None) -> None:
    """Every part selects layers and no layer twice (checked before any weight changes), then
    the method quantizes each part at its bits."""
    parts = cfg.part_configs()
    seen: dict[str, int] = {}
    for i, part in enumerate(parts):
        for name, _ in selected_linears(model, part):
            if name in seen:
                raise QfeatError(f"compression.parts[{seen[name]}] and [{i}] both select {name}")
            seen[name] = i
    if cfg.needs_calibration:
        apply_oneshot(model, cfg, calibration)
        return
    for part in parts:
        COMPRESSORS.get(part.name)(model, part, calibration)


COMPRESSORS.register("mixed")(apply_mixed)
