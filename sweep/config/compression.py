"""One structured config per compression method: each has exactly the options it uses.

`compression=<name>` selects one of these nodes (conf/compression/<name>.yaml names its schema),
so an option a method does not have is refused when the config is composed, and a job key holds
only what determines the result. The shared inputs `bits`, `sparsity` and
`calibration_sequences` (top level, so that `-m bits=4,5,6` reads naturally and one override
serves a sweep over several methods) feed the methods that use them through `${bits}` etc.; a
method without them ignores them. Class-level traits (ClassVar) say what a
method needs; `check()` refuses bad values before any model is loaded.
"""

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from omegaconf import II, MISSING

from sweep.base.errors import QfeatError
from sweep.base.registry import Registry

MIN_BITS, MAX_BITS = 2, 16
TARGETS = ("attention", "mlp")  # module groups a method compresses (see compressors.registry)
GRANULARITIES = ("channel", "tensor", "group")
SCOPES = ("matrix", "global")
HQQ_BITS = (2, 3, 4, 5, 6, 8)  # hqq's Quantizer.SUPPORTED_BITS within 2..16
QUANTO_BITS = (2, 4, 8)  # quanto's integer weight qtypes qint2, qint4, qint8
INT_BITS = (2, 3, 4, 5, 6, 7, 8)  # compressed-tensors' and torchao's integer weights
BNB_BLOCKSIZES = (32, 64, 128, 256, 512, 1024, 2048, 4096)
# Methods a noise control can match: they rewrite the target weights in place (fake quantization
# or pruning), so each matrix's error is W_method − W; module-replacing methods are not read back.
NOISE_MATCHES = ("rtn", "hqq", "quanto", "magnitude")

METHODS: Registry[type["CompressionConfig"]] = Registry("compression")


def _targets() -> list[str]:
    return list(TARGETS)


def _choices(values: tuple[int, ...]) -> str:
    """'2..16' for a contiguous range, else '{2, 4, 8}'."""
    if list(values) == list(range(values[0], values[-1] + 1)) and len(values) > 3:
        return f"{values[0]}..{values[-1]}"
    return "{" + ", ".join(map(str, values)) + "}"


def method(cls: type["CompressionConfig"]) -> type["CompressionConfig"]:
    """Register a method's config under its default `name`."""
    METHODS.register(cls.name)(cls)
    return cls


@dataclass
class CompressionConfig:
    """What `compression` holds: the method's name and the traits a job reads from it."""

    name: str = MISSING

    # Importable modules of the libraries the method runs (sweep.base.libraries has the pip).
    requires: ClassVar[tuple[str, ...]] = ()
    # It calibrates on the calibration slice (disjoint from the measured tokens).
    calibrated: ClassVar[bool] = False
    # It only rewrites target weights in place, so FP weights can be restored from a snapshot.
    weights_only: ClassVar[bool] = False
    # The bit-widths its `bits` option takes (None: no `bits` option).
    bit_choices: ClassVar[tuple[int, ...] | None] = None
    # The one bit-width of a method without a `bits` option (None: it does not quantize).
    fixed_bits: ClassVar[int | None] = None

    @property
    def weight_bits(self) -> int | None:
        """Bits per quantized weight (None for a pruner or no compression)."""
        return getattr(self, "bits", self.fixed_bits)

    @property
    def needs_calibration(self) -> bool:
        """Whether a job of this method takes a calibration slice."""
        return self.calibrated

    @property
    def prunes(self) -> bool:
        """Whether it reads the `sparsity` axis."""
        return any(f.name == "sparsity" for f in fields(self))

    def check(self) -> None:
        """Refuse values the types cannot catch, in one line (no model is loaded yet)."""
        if self.bit_choices is not None and self.bits not in self.bit_choices:
            raise QfeatError(
                f"compression={self.name} supports bits in {_choices(self.bit_choices)}; "
                f"got bits={self.bits}"
            )
        sparsity = getattr(self, "sparsity", 0.0)
        if not 0.0 <= sparsity < 1.0:
            raise QfeatError(f"sparsity={sparsity} is outside [0, 1)")
        group = getattr(self, "group_size", None)
        if group is not None and group < 1:
            raise QfeatError(f"compression.group_size={group} must be positive or null")


@dataclass
class TargetedConfig(CompressionConfig):
    """A method that compresses the linear layers of the chosen module groups of every block;
    embeddings, unembedding, norms and biases stay FP."""

    targets: list[str] = field(default_factory=_targets)

    def check(self) -> None:
        """Known, non-empty targets, then the method's own values."""
        unknown = sorted(set(self.targets) - set(TARGETS))
        if unknown or not self.targets:
            raise QfeatError(
                f"compression.targets={list(self.targets)}; choose from {list(TARGETS)}"
            )
        super().check()


@method
@dataclass
class NoneConfig(CompressionConfig):
    """No compression: the identity control (every active feature must come out with r = 1)."""

    name: str = "none"
    weights_only: ClassVar[bool] = True


@method
@dataclass
class RTNConfig(TargetedConfig):
    """Round-to-nearest fake quantization in the checkpoint's own [out, in] layout."""

    name: str = "rtn"
    bits: int = II("bits")
    granularity: str = "channel"  # channel (per output row) | tensor | group (input dim)
    group_size: int | None = None  # with granularity=group, e.g. 64 or 128
    symmetric: bool = True  # false: asymmetric with an integer zero point
    weights_only: ClassVar[bool] = True
    bit_choices: ClassVar[tuple[int, ...]] = tuple(range(MIN_BITS, MAX_BITS + 1))

    def check(self) -> None:
        """Granularity and group size agree."""
        super().check()
        if self.granularity not in GRANULARITIES:
            raise QfeatError(
                f"compression.granularity={self.granularity!r}; use {', '.join(GRANULARITIES)}"
            )
        if self.granularity == "group" and self.group_size is None:
            raise QfeatError(
                "compression.granularity=group needs a positive compression.group_size"
            )


@method
@dataclass
class MagnitudeConfig(TargetedConfig):
    """Unstructured magnitude pruning to `sparsity` of the target weights."""

    name: str = "magnitude"
    sparsity: float = II("sparsity")
    scope: str = "matrix"  # matrix: smallest |w| of each matrix; global: over all targets
    weights_only: ClassVar[bool] = True

    def check(self) -> None:
        """The scope is one magnitude pruning knows."""
        super().check()
        if self.scope not in SCOPES:
            raise QfeatError(f"compression.scope={self.scope!r}; use {' or '.join(SCOPES)}")


@method
@dataclass
class MagnitudeMatchedConfig(TargetedConfig):
    """Magnitude pruning at the sparsity whose calibration perplexity matches `baseline`'s (a
    method config, RTN at ${bits} by default): the job measures both in one pass and writes the
    overlap of their damaged features."""

    name: str = "magnitude_matched"
    baseline: Any = MISSING  # compression@compression.baseline=<method> picks another
    scope: str = "matrix"
    rel_tol: float = 0.01  # converged when |ppl_pruned − ppl_base| ≤ rel_tol × (ppl_base − ppl_fp)
    max_steps: int = 20  # perplexity evaluations, both ends included
    max_sparsity: float = 0.95
    calibration_sequences: int = II("calibration_sequences")
    weights_only: ClassVar[bool] = True

    @property
    def weight_bits(self) -> int | None:
        """The pruned model has no bit-width; the baseline's is what it is matched to."""
        return self.baseline.weight_bits

    @property
    def needs_calibration(self) -> bool:
        """The search evaluates perplexity on the calibration slice."""
        return True

    def check(self) -> None:
        """The baseline is a method, compressing the same targets; the search can run."""
        super().check()
        if not isinstance(self.baseline, TargetedConfig) or isinstance(
            self.baseline, MagnitudeMatchedConfig
        ):
            raise QfeatError("compression.baseline must be a compressing method (e.g. rtn)")
        self.baseline.check()
        if list(self.baseline.targets) != list(self.targets):
            raise QfeatError(
                f"compression.targets={list(self.targets)} but compression.baseline.targets="
                f"{list(self.baseline.targets)}: a matched pair compresses the same weights"
            )
        if self.scope not in SCOPES:
            raise QfeatError(f"compression.scope={self.scope!r}; use {' or '.join(SCOPES)}")
        if not (self.rel_tol > 0 and 0 < self.max_sparsity < 1 and self.max_steps >= 2):
            raise QfeatError(
                "matched search needs rel_tol > 0, 0 < max_sparsity < 1, max_steps >= 2"
            )
        _check_calibration(self)


@method
@dataclass
class NoiseConfig(TargetedConfig):
    """The matched-noise control: seeded Gaussian noise on every target weight, scaled so each
    matrix's error norm ‖W' − W‖_F equals that of `match` (a method config, RTN at ${bits} by
    default). A damage pattern shared with it is not specific to the method."""

    name: str = "noise"
    match: Any = MISSING  # compression@compression.match=<method> picks another
    seed: int = 0
    weights_only: ClassVar[bool] = True

    @property
    def weight_bits(self) -> int | None:
        """The noisy model has no bit-width; the matched method's is what it is matched to."""
        return self.match.weight_bits

    def check(self) -> None:
        """The matched method rewrites the same target weights in place (its error is then
        W_match − W, matrix by matrix)."""
        super().check()
        if not isinstance(self.match, TargetedConfig) or self.match.name not in NOISE_MATCHES:
            raise QfeatError(
                "compression.match must be a method that rewrites weights in place "
                f"({', '.join(NOISE_MATCHES)}); got {getattr(self.match, 'name', self.match)}"
            )
        self.match.check()
        if list(self.match.targets) != list(self.targets):
            raise QfeatError(
                f"compression.targets={list(self.targets)} but compression.match.targets="
                f"{list(self.match.targets)}: the noise goes on the weights it matches"
            )


def _check_calibration(cfg: Any) -> None:
    if cfg.calibration_sequences < 1:
        raise QfeatError("compression.calibration_sequences must be >= 1")


@method
@dataclass
class HQQConfig(TargetedConfig):
    """HQQ (half-quadratic quantization): asymmetric, per-group scale and optimised zero point."""

    name: str = "hqq"
    bits: int = II("bits")
    group_size: int | None = 64  # a multiple of 8 dividing each target's numel; null: per row
    axis: int = 1  # 1: groups of consecutive weights along a row (HQQ's default); 0: the other
    optimize: bool = True  # HQQ's proximal zero-point optimisation
    requires: ClassVar[tuple[str, ...]] = ("hqq",)
    weights_only: ClassVar[bool] = True
    bit_choices: ClassVar[tuple[int, ...]] = HQQ_BITS

    def check(self) -> None:
        """Axis and group size are settings HQQ accepts."""
        super().check()
        if self.axis not in (0, 1):
            raise QfeatError(f"compression.axis={self.axis}; HQQ quantizes along axis 0 or 1")
        if self.group_size is not None and self.group_size % 8:
            raise QfeatError(
                f"compression.group_size={self.group_size}; HQQ needs a multiple of 8 or null"
            )


@method
@dataclass
class QuantoConfig(TargetedConfig):
    """optimum-quanto's QLinear weight quantization (qint2/qint4 per group, qint8 per channel)."""

    name: str = "quanto"
    bits: int = II("bits")
    group_size: int | None = None  # null: quanto's default; must be null at 8 bits
    requires: ClassVar[tuple[str, ...]] = ("optimum.quanto",)
    weights_only: ClassVar[bool] = True
    bit_choices: ClassVar[tuple[int, ...]] = QUANTO_BITS

    def check(self) -> None:
        """quanto groups only its 2- and 4-bit weights."""
        super().check()
        if self.group_size is not None and self.bits == 8:
            raise QfeatError("compression=quanto quantizes 8 bits per channel; set group_size=null")


@dataclass
class BnB4bitConfig(TargetedConfig):
    """bitsandbytes' 4-bit Linear4bit (QLoRA's load_in_4bit), blocks of `group_size` weights."""

    group_size: int | None = None  # bitsandbytes blocksize: null = 64; 32..4096, powers of 2
    requires: ClassVar[tuple[str, ...]] = ("bitsandbytes",)
    fixed_bits: ClassVar[int] = 4

    def check(self) -> None:
        """The block size is one bitsandbytes quantizes with."""
        super().check()
        if self.group_size is not None and self.group_size not in BNB_BLOCKSIZES:
            raise QfeatError(
                f"compression.group_size={self.group_size}; bitsandbytes 4-bit blocks are "
                f"{list(BNB_BLOCKSIZES)} (null: 64)"
            )


@method
@dataclass
class NF4Config(BnB4bitConfig):
    """bitsandbytes NF4 (normal-float 4-bit code book)."""

    name: str = "nf4"


@method
@dataclass
class FP4Config(BnB4bitConfig):
    """bitsandbytes FP4."""

    name: str = "fp4"


@method
@dataclass
class LLMInt8Config(TargetedConfig):
    """bitsandbytes LLM.int8 (load_in_8bit): int8 rows, outlier input columns unquantized."""

    name: str = "llm_int8"
    requires: ClassVar[tuple[str, ...]] = ("bitsandbytes",)
    fixed_bits: ClassVar[int] = 8


@dataclass
class CalibratedConfig(TargetedConfig):
    """A method that calibrates on `calibration_sequences` sequences of the calibration slice."""

    calibration_sequences: int = II("calibration_sequences")
    requires: ClassVar[tuple[str, ...]] = ("llmcompressor", "compressed_tensors")
    calibrated: ClassVar[bool] = True

    def check(self) -> None:
        """At least one calibration sequence."""
        super().check()
        _check_calibration(self)


@method
@dataclass
class GPTQConfig(CalibratedConfig):
    """GPTQ through llm-compressor: symmetric integer weights (W<bits>A16)."""

    name: str = "gptq"
    bits: int = II("bits")
    group_size: int | None = 128  # one scale per 128 input columns; null: per output channel
    bit_choices: ClassVar[tuple[int, ...]] = INT_BITS


@method
@dataclass
class AWQConfig(CalibratedConfig):
    """AWQ through llm-compressor: activation-aware scaling, then symmetric integer weights."""

    name: str = "awq"
    bits: int = II("bits")
    group_size: int | None = 128
    bit_choices: ClassVar[tuple[int, ...]] = INT_BITS


@method
@dataclass
class W8A8Config(CalibratedConfig):
    """SmoothQuant + GPTQ W8A8 through llm-compressor: int8 weights, dynamic int8 activations."""

    name: str = "w8a8"
    fixed_bits: ClassVar[int] = 8


@method
@dataclass
class FP8Config(CalibratedConfig):
    """llm-compressor FP8_DYNAMIC: e4m3 weights per channel, dynamic per-token activations."""

    name: str = "fp8"
    fixed_bits: ClassVar[int] = 8


@method
@dataclass
class WandaConfig(CalibratedConfig):
    """Wanda pruning (|w| × input-activation norm) through llm-compressor, unstructured."""

    name: str = "wanda"
    sparsity: float = II("sparsity")


@method
@dataclass
class SparseGPTConfig(CalibratedConfig):
    """SparseGPT pruning (second order, with weight updates) through llm-compressor."""

    name: str = "sparsegpt"
    sparsity: float = II("sparsity")


@dataclass
class TorchAOConfig(TargetedConfig):
    """A torchao config applied by `quantize_` to the target layers (none calibrates)."""

    requires: ClassVar[tuple[str, ...]] = ("torchao",)


@method
@dataclass
class AOInt8WOConfig(TorchAOConfig):
    """torchao int8 weight-only (Int8WeightOnlyConfig), per output channel or per group."""

    name: str = "ao_int8wo"
    group_size: int | None = None  # null: per output channel (PerRow); an int must divide in
    fixed_bits: ClassVar[int] = 8


@method
@dataclass
class AOW8A8Config(TorchAOConfig):
    """torchao W8A8 (Int8DynamicActivationInt8WeightConfig): int8 weights and activations."""

    name: str = "ao_w8a8"
    fixed_bits: ClassVar[int] = 8


@method
@dataclass
class AOIntxWOConfig(TorchAOConfig):
    """torchao intx weight-only (IntxWeightOnlyConfig(weight_dtype=torch.int<bits>))."""

    name: str = "ao_intxwo"
    bits: int = II("bits")
    group_size: int | None = 128  # null: per output channel
    bit_choices: ClassVar[tuple[int, ...]] = INT_BITS


@method
@dataclass
class AOFP8WOConfig(TorchAOConfig):
    """torchao float8 weight-only (Float8WeightOnlyConfig): e4m3, one scale per channel."""

    name: str = "ao_fp8wo"
    fixed_bits: ClassVar[int] = 8
