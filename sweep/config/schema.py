"""The typed config of one job (Hydra ConfigStore): the root and every group but compression,
whose nodes (one per method) are in sweep.config.compression."""

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from sweep.config.compression import METHODS


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
class BootstrapConfig:
    """The token bootstrap of every feature's r: blocks of whole sequences drawn with
    replacement (docs/uncertainty.md)."""

    n_blocks: int = 32  # contiguous blocks of whole sequences (at most one per sequence)
    n_boot: int = 1000  # resamples; 0: no intervals (nor the settling check)
    level: float = 0.95  # of each percentile interval


@dataclass
class SurvivalConfig:
    """Definitions of active features and survival classes."""

    survived: float = 0.9
    blurred: float = 0.5
    min_active_tokens: int = 10
    exclude_first_position: bool = True
    watch: list[int] = field(default_factory=list)  # feature ids always carded and checked
    bootstrap: BootstrapConfig = field(default_factory=BootstrapConfig)


@dataclass
class RuntimeConfig:
    """Execution settings that do not change what is measured (excluded from the job key)."""

    device: str = "auto"
    batch_size: int = 8
    num_threads: int = 0
    progress: bool = True
    # Keep a float16/bfloat16 model.dtype on CPU (default: float32 there). It changes the
    # numbers, so a job with it set has its own key (sweep.config.keyed).
    half_on_cpu: bool = False


@dataclass
class WandbConfig:
    """wandb logging; excluded from the job key."""

    mode: str = "offline"
    project: str = "qfeat"
    entity: str | None = None
    group: str | None = None
    log_table: bool = True
    background: bool = True  # runs made by a background writer (sweep.job.wandb_queue)
    init_timeout_s: float = 20.0  # an online run not started by then falls back to offline


@dataclass
class QfeatConfig:
    """Root config of one job."""

    model: ModelConfig = field(default_factory=ModelConfig)
    sae: SAEConfig = field(default_factory=SAEConfig)
    compression: Any = MISSING  # a node of sweep.config.compression, chosen by compression=
    data: DataConfig = field(default_factory=DataConfig)
    survival: SurvivalConfig = field(default_factory=SurvivalConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    fidelity: FidelityConfig = field(default_factory=FidelityConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    wandb: WandbConfig = field(default_factory=WandbConfig)
    bits: int = 4  # sweep axis: feeds compression.bits of the methods that have it
    sparsity: float = 0.5  # sweep axis: feeds compression.sparsity of the pruners
    calibration_sequences: int = 32  # feeds the methods that calibrate (and matched searches)
    candidate: str | None = None  # audits: the compressed checkpoint measured against the model
    seed: int = 0
    sweep_name: str = "default"
    out_root: str = "outputs"
    reference_cache: str | None = "${out_root}/reference_cache"


def register_configs() -> None:
    """The root schema as `qfeat_schema`, each method's as `compression/<name>_schema`."""
    store = ConfigStore.instance()
    store.store(name="qfeat_schema", node=QfeatConfig)
    for name in METHODS.names():
        store.store(group="compression", name=f"{name}_schema", node=METHODS.get(name))
