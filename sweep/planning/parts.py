"""A plan's parts (block × module kind), their sizes, and an assignment of widths to them as
`compression=mixed` parts: Hydra overrides for a job, and the config file a sweep takes."""

from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from omegaconf import DictConfig
from transformers import AutoConfig, AutoModelForCausalLM

from sweep.base.errors import QfeatError
from sweep.compressors.registry import target_linears
from sweep.config.compression import MixedConfig, expand_targets
from sweep.config.locations import model_depth, model_path

PLAN_NAME = "plan"  # OUT/compression/plan.yaml: `--config-dir OUT compression=plan`


@dataclass(frozen=True)
class Part:
    """The matrices of one module kind in one block, and how many weights they hold."""

    block: int
    kind: str
    n_weights: int

    @property
    def label(self) -> str:
        """'block 2 mlp_in'."""
        return f"block {self.block} {self.kind}"


def select_parts(model_cfg: DictConfig, targets: list[str], blocks: list[int] | None) -> list[Part]:
    """Every (block, kind) the selection names, with its size from the model's architecture
    (built on the meta device: no weights are read). A selection that matches nothing is one
    line, before any job."""
    kinds = expand_targets(targets)
    config = AutoConfig.from_pretrained(model_path(model_cfg))
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    depth = model_depth(model_cfg) or config.num_hidden_layers
    chosen = list(range(depth)) if blocks is None else sorted(blocks)
    beyond = [b for b in chosen if b >= depth]
    if beyond:
        raise QfeatError(f"blocks {beyond} select nothing: the model has {depth} (0..{depth - 1})")
    parts = []
    for block in chosen:
        for kind in kinds:
            layers = target_linears(model, [kind], [block])
            parts.append(Part(block, kind, sum(m.weight.numel() for _, m in layers)))
    return parts


def mixed_parts(parts: list[Part], bits: list[int]) -> list[dict]:
    """An assignment as compression=mixed parts: one per (kind, width), its blocks listed."""
    grouped: dict[tuple[str, int], list[int]] = {}
    for part, width in zip(parts, bits, strict=True):
        grouped.setdefault((part.kind, int(width)), []).append(part.block)
    kinds = {k: i for i, k in enumerate(dict.fromkeys(p.kind for p in parts))}
    order = sorted(grouped, key=lambda kb: (kinds[kb[0]], kb[1]))
    return [{"targets": [k], "blocks": sorted(grouped[k, b]), "bits": b} for k, b in order]


def mixed_overrides(method: str, parts: list[dict], model: str) -> list[str]:
    """Hydra overrides of a compression=mixed job with these parts, for this model (its
    identity: sweep.config.locations.model_identity)."""
    text = ",".join(
        f"{{targets:[{','.join(p['targets'])}],blocks:[{','.join(map(str, p['blocks']))}],"
        f"bits:{p['bits']}}}"
        for p in parts
    )
    return [
        "compression=mixed",
        f"compression.method={method}",
        f"compression.parts=[{text}]",
        f"compression.for_model='{model}'",
    ]


def bits_per_weight(parts: list[Part], bits: list[int]) -> float:
    """Σ bits × n_weights / Σ n_weights over the selected matrices."""
    total = sum(p.n_weights for p in parts)
    return sum(b * p.n_weights for p, b in zip(parts, bits, strict=True)) / total


def write_plan_config(out: Path, job: MixedConfig, parts: list[dict], model: str) -> Path:
    """OUT/compression/plan.yaml: a compression=mixed node a sweep loads with --config-dir OUT,
    with the job's method options and calibration size (so its jobs keep the verified key)."""
    path = out / "compression" / f"{PLAN_NAME}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    node = {
        "defaults": ["mixed_schema", "_self_"],
        "method": job.method,
        "options": dict(job.options),
        "parts": parts,
        "calibration_sequences": job.calibration_sequences,
        "for_model": model,
    }
    header = (
        "# Written by qfeat-plan (docs/plan.md): python launch.py --config-dir "
        f"{out} compression={PLAN_NAME}\n"
    )
    path.write_text(header + yaml.safe_dump(node, sort_keys=False, default_flow_style=None))
    return path
