"""summary.json as types: the one definition the job writes, analysis reads and tests build.

Every record is a pydantic dataclass (SAEBench's `eval_output` habit): the writer builds them,
`Summary.to_json` turns them into JSON, `read_summary` validates a file back into them (one line
naming what is wrong), and `summary_json_schema` generates docs/summary.schema.json. A summary
carries `schema_version`; a reader refuses any version it does not know.
"""

import dataclasses
import math
from typing import Any, Literal

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass

from sweep.base.errors import QfeatError

# 2: typed records, compression options per method, `bits` null for methods without one,
# the matched partner named `baseline`.
SCHEMA_VERSION = 2
COMPLETE = "complete"

_STRICT = ConfigDict(extra="forbid")


@dataclass(config=_STRICT, kw_only=True)
class ClassFractions:
    """Active features of one SAE (or all SAEs of a job) and the fraction in each class."""

    n_features: int
    n_active: int = Field(description="features active on >= survival.min_active_tokens tokens")
    n_survived: int
    frac_survived: float
    n_blurred: int
    frac_blurred: float
    n_destroyed: int
    frac_destroyed: float
    n_silenced: int = Field(description="active features whose compressed code is constant")
    mean_r: float
    median_r: float
    n_uncertain: int | None = Field(
        None, description="active features whose r interval straddles a class threshold"
    )
    frac_uncertain: float | None = None


@dataclass(config=_STRICT, kw_only=True)
class Behaviour:
    """The compressed model's next-token behaviour against the FP model on the measured tokens."""

    fp_ppl: float
    q_ppl: float
    delta_ppl: float
    fp_loss: float = Field(description="mean next-token cross-entropy of the FP model (nats)")
    q_loss: float
    kl_mean: float = Field(description="mean KL(P_fp || P_q) per predicted token (nats)")


@dataclass(config=_STRICT, kw_only=True)
class Metrics(ClassFractions, Behaviour):
    """The job's headline numbers over the features of every SAE it measured."""

    kl_method: str
    n_sequences: int
    n_measured_tokens: int
    n_predicted_tokens: int
    n_compressed_matrices: int
    frac_degraded: float = Field(description="1 - frac_survived")
    sparsity: float | None = Field(None, description="fraction of target weights pruned")
    fp_ppl_sliding: float | None = None
    q_ppl_sliding: float | None = None
    delta_ppl_sliding: float | None = None
    bits_per_weight: float | None = Field(
        None,
        description="mean integer bits per weight of the block linear layers (scales left out; "
        "a layer left FP at the model's width); null for pruning",
    )


@dataclass(config=_STRICT, kw_only=True)
class MarginalAUC:
    """How well one FP statistic alone separates survivors (ROC AUC, NaN when undefined)."""

    auc: float
    auc_abs: float = Field(description="max(auc, 1 - auc): direction-free")
    sign: str | None
    n: int


@dataclass(config=_STRICT, kw_only=True)
class Roc:
    """The cross-validated ROC curve (at most 200 points)."""

    fpr: list[float]
    tpr: list[float]


@dataclass(config=_STRICT, kw_only=True)
class Prediction:
    """Cross-validated prediction of one SAE's survivors from FP statistics alone."""

    estimable: bool
    reason: str | None
    n: int
    n_positive: int
    model: str
    k: int
    label: str
    predictors: list[str]
    dropped: list[str]
    auc: float | None = None
    fold_auc_mean: float | None = None
    fold_auc_std: float | None = None
    fold_aucs: list[float] | None = None
    marginal: dict[str, MarginalAUC] | None = None
    roc: Roc | None = None
    coef_standardized: dict[str, float] | None = None


@dataclass(config=_STRICT, kw_only=True)
class MatchResult:
    """The sparsity search of a matched pair; `sparsity` is the closest found even when not
    converged."""

    target_ppl: float
    base_ppl: float
    sparsity: float
    ppl: float
    rel_error: float
    converged: bool
    steps: int
    history: list[tuple[float, float]] = Field(default_factory=list)
    reason: str | None = None


@dataclass(config=_STRICT, kw_only=True)
class Overlap:
    """Do two compressions damage the same features? Jaccard of the damaged sets and Spearman
    of damage over the features active in both."""

    n_features: int
    n_active_a: int
    n_active_b: int
    n_common_active: int
    n_damaged_a: int
    n_damaged_b: int
    n_damaged_both: int
    n_damaged_union: int
    jaccard: float
    jaccard_reason: str | None
    spearman: float
    spearman_p: float
    spearman_n: int
    spearman_reason: str | None


@dataclass(config=_STRICT, kw_only=True)
class BaselineMetrics(ClassFractions, Behaviour):
    """The matched partner's own class fractions and behaviour."""


@dataclass(config=_STRICT, kw_only=True)
class Matched:
    """A matched pair: the pruned model (the job's features) against its baseline method."""

    baseline_method: str
    search: MatchResult
    baseline: BaselineMetrics
    overlap: Overlap


@dataclass(config=_STRICT, kw_only=True)
class SaeFit:
    """How well the SAE fits a model's activations on the first measured sequences."""

    explained_variance: float
    l0: float
    ce_loss: float
    ce_loss_spliced: float = Field(description="loss with the SAE reconstruction spliced in")


@dataclass(config=_STRICT, kw_only=True)
class SaeFitPair:
    """SAE fit on the FP and on the compressed model."""

    fp: SaeFit
    q: SaeFit


@dataclass(config=_STRICT, kw_only=True)
class FidelitySummary:
    """Steering and ablation fidelity of one SAE's sampled features."""

    n_features: int
    n_damaged: int
    alpha: float
    mean_steer_r_survived: float | None
    mean_steer_r_damaged: float | None
    spearman_r_vs_steer_r: float | None
    mean_ablate_r_survived: float | None
    mean_ablate_r_damaged: float | None
    spearman_r_vs_ablate_r: float | None


@dataclass(config=_STRICT, kw_only=True)
class Deployed(ClassFractions, Behaviour):
    """The same measurement on llama.cpp's own forward of the GGUF file: SAE codes of its
    residual stream at the hooks (its evaluation callback) and its log-probs."""

    runtime: dict[str, int | str] = Field(description="llama.cpp's context settings and build")
    logp_gap_mean: float = Field(
        description="mean |log p_llama.cpp − log p_qfeat| of the observed next token, against "
        "qfeat's forward of the same dequantized weights"
    )
    logp_gap_max: float
    overlap: Overlap = Field(description="damaged features, qfeat's forward vs llama.cpp's")


@dataclass(config=_STRICT, kw_only=True)
class GGUFRecord:
    """compression=gguf (or a GGUF candidate): the file llama.cpp wrote and what it holds."""

    type: str = Field(description="llama.cpp file type (Q4_K_M, ...)")
    bits_per_weight: float = Field(
        description="bits per weight of the file's 2-D weights, embedding and unembedding included"
    )
    matrix_types: dict[str, int] = Field(description="2-D weights per ggml type")
    n_fallback: int | None = Field(
        description="tensors llama.cpp gave a fallback type (rows its block does not divide); "
        "null for an audited file"
    )
    imatrix: bool
    seconds: dict[str, float] = Field(description="convert, imatrix, quantize, read_back")
    deployed: Deployed | None = Field(description="llama.cpp's own forward; null when not run")


@dataclass(config=_STRICT, kw_only=True)
class SurvivalInterval:
    """Percentile intervals, over token resamples, of a survival fraction and of mean r (each
    resample has its own active features), and their means over the resamples (a mean away
    from the job's own value shows the bootstrap's bias: read the width, not the location)."""

    frac_survived_lo: float
    frac_survived_hi: float
    frac_survived_resampled: float
    mean_r_lo: float
    mean_r_hi: float
    mean_r_resampled: float


@dataclass(config=_STRICT, kw_only=True)
class PrefixPoint:
    """The job's numbers on the first sequences only (a prefix of whole blocks)."""

    n_sequences: int
    n_tokens: int
    n_active: int
    frac_survived: float
    frac_blurred: float
    frac_destroyed: float
    mean_r: float


@dataclass(config=_STRICT, kw_only=True)
class Uncertainty:
    """How sure the job's numbers are: a bootstrap over blocks of whole sequences, and the
    numbers on nested prefixes of the token set (docs/uncertainty.md)."""

    n_blocks: int
    sequences_per_block: list[int]
    n_boot: int = Field(description="resamples; 0: no intervals")
    level: float
    seed: int
    job: SurvivalInterval | None = Field(description="over every SAE's features; null if off")
    per_sae: dict[str, SurvivalInterval]
    prefix_order: list[int] = Field(
        description="the blocks in the order the prefixes take them (a seeded shuffle)"
    )
    convergence: list[PrefixPoint] = Field(description="one point per prefix of whole blocks")
    settled: bool | None = Field(
        description="survival and mean r at half the tokens lie within the half-width of "
        "their interval from the full token set's; null when not checked"
    )
    settle_note: str


@dataclass(config=_STRICT, kw_only=True)
class ReferenceInfo:
    """The FP reference a job was measured against: its cache key and who computed it."""

    key: str
    computed: bool


@dataclass(config=_STRICT, kw_only=True)
class Summary:
    """One job's summary.json."""

    key: str = Field(description="the job key: a hash of everything that determines the result")
    created: str
    git_commit: str | None
    versions: dict[str, str | None]
    device: str
    model: str
    saes: list[str] = Field(description="hook names of the SAEs measured, in order")
    compression: str
    bits: int | None = Field(description="weight bit-width of the method; null for pruning")
    reference: ReferenceInfo
    config: dict[str, Any] = Field(description="the job's resolved config")
    metrics: Metrics
    per_sae: dict[str, ClassFractions]
    prediction: dict[str, Prediction]
    matched: Matched | None
    sae_fit: dict[str, SaeFitPair] | None
    fidelity: dict[str, FidelitySummary] | None
    uncertainty: Uncertainty | None = None
    timings_s: dict[str, float]
    wall_time_s: float
    gguf: GGUFRecord | None = None
    status: Literal["complete"] = COMPLETE
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> dict[str, Any]:
        """The JSON-ready dict (NaN stays NaN: summary.json is written with allow_nan)."""
        return dataclasses.asdict(self)


_SUMMARY = TypeAdapter(Summary)


def parse_summary(payload: Any) -> Summary:
    """A summary from its JSON dict; one line naming the first problem when it is not one."""
    if not isinstance(payload, dict):
        raise QfeatError("summary.json is not a JSON object")
    version = payload.get("schema_version")
    if version != SCHEMA_VERSION:
        raise QfeatError(
            f"summary.json has schema_version {version!r}; this qfeat reads {SCHEMA_VERSION} "
            "(re-run the sweep with this qfeat to rewrite it)"
        )
    try:
        return _SUMMARY.validate_python(payload)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "summary"
        raise QfeatError(f"summary.json {where}: {first['msg']}") from err


def summary_json_schema() -> dict[str, Any]:
    """The JSON Schema of summary.json (docs/summary.schema.json is generated from it)."""
    return _SUMMARY.json_schema()


def finite_or_none(value: float) -> float | None:
    """A float for an optional JSON field: None for NaN."""
    return None if value is None or math.isnan(value) else float(value)
