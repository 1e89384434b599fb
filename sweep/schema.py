"""Typed config schema (Hydra ConfigStore) and the checks run before any heavy work."""

import math
from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig

from sweep.errors import QfeatError

MIN_BITS, MAX_BITS = 2, 16


@dataclass
class ModelConfig:
    """Which language model to load; `path` is an HF repo id or a local directory."""

    name: str = MISSING
    path: str | None = None
    dtype: str = "float32"


@dataclass
class SAEConfig:
    """Which SAE to load: a local SAE-Lens directory or an SAE-Lens release + id."""

    name: str = MISSING
    layer: int = MISSING
    layers: list[int] | None = None  # several SAEs fed by one forward pass; overrides `layer`
    path: str | None = None
    release: str | None = None
    sae_id: str | None = None


@dataclass
class CompressionConfig:
    """How to compress the target weights. Fields unused by a method are ignored by it."""

    name: str = MISSING
    granularity: str = "channel"
    group_size: int | None = None
    symmetric: bool = True
    axis: int = 1  # hqq: grouping axis (HQQ's default 1: consecutive weights along a row)
    optimize: bool = True  # hqq: proximal zero-point optimisation
    targets: list[str] = field(default_factory=lambda: ["attention", "mlp"])
    scope: str = "matrix"
    match: str | None = None
    rel_tol: float = 0.01
    max_steps: int = 20
    max_sparsity: float = 0.95
    calibration_sequences: int = 32


@dataclass
class DataConfig:
    """The measured token set: deterministic from source, sizes and seed."""

    name: str = MISSING
    source: str = MISSING
    path: str | None = None
    seq_len: int = 128
    n_sequences: int = 64
    seed: int = 0
    text_column: str = "text"  # data.source=hub_dataset
    split: str = "train"
    max_documents: int = 2000


@dataclass
class EvalConfig:
    """Behavioural metrics beside feature survival."""

    sliding_window_stride: int | None = None  # off: ~(seq_len−1)/stride more forwards (paper: 64)
    kl_top_k: int = 128
    contexts_k: int = 16  # top contexts kept per feature, by FP and by compressed activation
    sae_fit_sequences: int = 16  # first sequences (at most all) for the SAE-fit metrics; 0: off


@dataclass
class FidelityConfig:
    """Steering and ablation fidelity on a bounded sample of each SAE's active features."""

    max_features: int = 8  # damaged features first, then random survivors; 0 turns it off
    n_sequences: int = 4  # the first measured sequences (at most all) carry the interventions
    alpha: float = 4.0  # steering strength, in units of each feature's FP peak activation


@dataclass
class SurvivalConfig:
    """Definitions of active features and survival classes."""

    survived: float = 0.9
    blurred: float = 0.5
    min_active_tokens: int = 10
    exclude_first_position: bool = True
    watch: list[int] = field(default_factory=list)  # feature ids always carded and checked


@dataclass
class RuntimeConfig:
    """Execution settings that do not change what is measured (excluded from the job key)."""

    device: str = "auto"
    batch_size: int = 8
    num_threads: int = 0
    progress: bool = True


@dataclass
class WandbConfig:
    """wandb logging; excluded from the job key."""

    mode: str = "offline"
    project: str = "qfeat"
    entity: str | None = None
    group: str | None = None
    log_table: bool = True


@dataclass
class QfeatConfig:
    """Root config of one job."""

    model: ModelConfig = field(default_factory=ModelConfig)
    sae: SAEConfig = field(default_factory=SAEConfig)
    compression: CompressionConfig = field(default_factory=CompressionConfig)
    data: DataConfig = field(default_factory=DataConfig)
    survival: SurvivalConfig = field(default_factory=SurvivalConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    fidelity: FidelityConfig = field(default_factory=FidelityConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    wandb: WandbConfig = field(default_factory=WandbConfig)
    bits: int = 4
    sparsity: float = 0.5
    candidate: str | None = None  # audits: the compressed checkpoint measured against the model
    seed: int = 0
    sweep_name: str = "default"
    out_root: str = "outputs"
    reference_cache: str | None = "${out_root}/reference_cache"


def register_configs() -> None:
    """Make the schema available to Hydra as `qfeat_schema`."""
    ConfigStore.instance().store(name="qfeat_schema", node=QfeatConfig)


def validate(cfg: DictConfig) -> None:
    """Fail fast with one line on values the schema's types cannot catch."""
    from sweep.compressors import COMPRESSORS, check_method
    from sweep.data import TOKEN_SOURCES
    from sweep.models import MODELS, resolve_device
    from sweep.saes import SAES
    from sweep.tracking import wandb_mode

    if not MIN_BITS <= cfg.bits <= MAX_BITS:
        raise QfeatError(f"bits={cfg.bits} is outside {MIN_BITS}..{MAX_BITS}")
    MODELS.get(cfg.model.name)
    SAES.get(cfg.sae.name)
    check_method(cfg.compression, cfg.bits)
    TOKEN_SOURCES.get(cfg.data.source)
    comp = cfg.compression
    if comp.granularity not in ("channel", "tensor", "group"):
        raise QfeatError(
            f"compression.granularity={comp.granularity!r}; use channel, tensor or group"
        )
    if comp.granularity == "group" and (comp.group_size is None or comp.group_size < 1):
        raise QfeatError("compression.granularity=group needs a positive compression.group_size")
    if not 0.0 <= cfg.sparsity < 1.0:
        raise QfeatError(f"sparsity={cfg.sparsity} is outside [0, 1)")
    if comp.scope not in ("matrix", "global"):
        raise QfeatError(f"compression.scope={comp.scope!r}; use matrix or global")
    if comp.match is not None and comp.match not in COMPRESSORS:
        raise QfeatError(f"compression.match={comp.match!r} is not a compression method")
    if comp.match is not None:
        check_method(comp, cfg.bits, comp.match)
    if comp.match is not None and not (comp.rel_tol > 0 and 0 < comp.max_sparsity < 1):
        raise QfeatError("matched search needs rel_tol > 0 and 0 < max_sparsity < 1")
    s = cfg.survival
    if not 0.0 < s.blurred < s.survived <= 1.0:
        raise QfeatError(
            f"need 0 < survival.blurred < survival.survived <= 1; got {s.blurred}, {s.survived}"
        )
    if s.min_active_tokens < 1:
        raise QfeatError("survival.min_active_tokens must be >= 1")
    if cfg.data.seq_len < 2 or cfg.data.n_sequences < 1:
        raise QfeatError("data.seq_len must be >= 2 and data.n_sequences >= 1")
    measured = cfg.data.n_sequences * (cfg.data.seq_len - int(s.exclude_first_position))
    if measured < s.min_active_tokens:
        raise QfeatError(
            f"token set too small: {measured} measured tokens < survival.min_active_tokens="
            f"{s.min_active_tokens}; no feature could count as active"
        )
    stride = cfg.eval.sliding_window_stride
    if stride is not None and not 1 <= stride <= cfg.data.seq_len - 1:
        raise QfeatError(f"eval.sliding_window_stride={stride} must be in 1..data.seq_len-1")
    if cfg.eval.kl_top_k < 1:
        raise QfeatError("eval.kl_top_k must be >= 1")
    if cfg.eval.contexts_k < 0 or cfg.fidelity.max_features < 0:
        raise QfeatError("eval.contexts_k and fidelity.max_features must be >= 0 (0: off)")
    if cfg.eval.sae_fit_sequences < 0 or cfg.fidelity.n_sequences < 1:
        raise QfeatError("need eval.sae_fit_sequences >= 0 (0: off) and fidelity.n_sequences >= 1")
    if not math.isfinite(cfg.fidelity.alpha):
        raise QfeatError(f"fidelity.alpha={cfg.fidelity.alpha} must be finite")
    if any(f < 0 for f in cfg.survival.watch):
        raise QfeatError(f"survival.watch={list(cfg.survival.watch)} holds a negative feature id")
    wandb_mode(cfg)
    if cfg.runtime.batch_size < 1:
        raise QfeatError("runtime.batch_size must be >= 1")
    if cfg.model.dtype not in ("float32", "float16", "bfloat16"):
        raise QfeatError(f"model.dtype={cfg.model.dtype!r}; use float32, float16 or bfloat16")
    resolve_device(cfg.runtime.device)
