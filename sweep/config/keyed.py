"""What of a job's config determines its result: the config minus where and how the job runs
and minus the sweep axes (their values live in the method's own options), with every local
input replaced by its content digest, never its path."""

from typing import Any

from omegaconf import DictConfig, OmegaConf

from sweep.base.fingerprint import content_digest
from sweep.config.compression import CompressionConfig
from sweep.config.locations import local_data_path, local_model_dir, local_sae_digest

# Top-level config fields that say where or how a job runs, not what it measures: left out of
# job keys, and never a dimension that tells a sweep's configurations apart in the analysis.
NON_KEY_FIELDS = ("runtime", "wandb", "sweep_name", "out_root", "reference_cache")
# Shared inputs that feed the methods that use them (compression.bits, .sparsity,
# .calibration_sequences): a method's own option enters the key, the shared input does not
# (`compression=wanda bits=3,4` is one job).
AXIS_FIELDS = ("bits", "sparsity", "calibration_sequences")
# Where each local input's path sits in the config: replaced by its content digest in keys.
_PATH_FIELDS = {"model": ("model", "path"), "sae": ("sae", "path"), "data": ("data", "path")}


def input_digests(cfg: DictConfig) -> dict[str, str | None]:
    """Content digest of every local input a job reads (None: a hub id, identified by name)."""
    return {
        "model": content_digest(local_model_dir(cfg.model)),
        "sae": local_sae_digest(cfg.sae),
        "data": content_digest(local_data_path(cfg.data)),
        "candidate": content_digest(cfg.candidate),
    }


def keyed_config(cfg: DictConfig, method: CompressionConfig) -> dict[str, Any]:
    """The resolved config that determines the result, local paths replaced by content.

    `method` is the job's checked compression config (sweep.config.validate): its fields, and
    only those, stand for `compression`. Two checkouts, or cluster nodes mounting the same files
    at different paths, get the same key; a file rewritten in place gets a new one.
    """
    resolved = OmegaConf.to_container(cfg, resolve=True)
    dropped = (*NON_KEY_FIELDS, *AXIS_FIELDS, "hydra")
    keyed = {k: v for k, v in resolved.items() if k not in dropped}
    keyed["compression"] = method.key_fields()
    digests = input_digests(cfg)
    for role, (group, name) in _PATH_FIELDS.items():
        if digests[role] is not None:
            keyed[group] = {**keyed[group], name: None}
    if digests["candidate"] is not None:
        keyed["candidate"] = None
    if cfg.runtime.half_on_cpu and cfg.model.dtype != "float32":  # absent by default: old keys hold
        keyed["model"] = {**keyed["model"], "half_on_cpu": True}
    return {**keyed, "inputs": digests}
