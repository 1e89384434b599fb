"""One structured config per compression method: each has exactly the options it uses.

`compression=<name>` selects one of these nodes (conf/compression/<name>.yaml names its schema),
so an option a method does not have is refused when the config is composed, and a job key holds
only what determines the result. The shared inputs `bits`, `sparsity` and
`calibration_sequences` (top level, so that `-m bits=4,5,6` reads naturally and one override
serves a sweep over several methods) feed the methods that use them through `${bits}` etc.; a
method without them ignores them. Class-level traits (ClassVar) say what a
method needs; `check()` refuses bad values before any model is loaded.
"""

from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

from omegaconf import II, MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from sweep.base import libraries
from sweep.base.errors import QfeatError
from sweep.base.registry import Registry

MIN_BITS, MAX_BITS = 2, 16
# Module kinds of a transformer block's linear layers (compressors.registry maps them to module
# names per architecture) and the groups of them a method compresses by default.
KINDS = ("attn_qkv", "attn_out", "mlp_in", "mlp_out")
GROUPS = {"attention": ("attn_qkv", "attn_out"), "mlp": ("mlp_in", "mlp_out")}
TARGETS = tuple(GROUPS)  # the default targets: every block linear layer
GRANULARITIES = ("channel", "tensor", "group")
SCOPES = ("matrix", "global")
HQQ_BITS = (2, 3, 4, 5, 6, 8)  # hqq's Quantizer.SUPPORTED_BITS within 2..16
QUANTO_BITS = (2, 4, 8)  # quanto's integer weight qtypes qint2, qint4, qint8
INT_BITS = (2, 3, 4, 5, 6, 7, 8)  # compressed-tensors' and torchao's integer weights
BNB_BLOCKSIZES = (32, 64, 128, 256, 512, 1024, 2048, 4096)
# llama.cpp file types (llama-quantize's names) that qfeat quantizes to and reads back: every
# one gguf-py dequantizes, for dense models. The IQ1/IQ2 mixes and Q2_K_S quantize only with an
# importance matrix (llama.cpp refuses them without one).
GGUF_TYPES = (
    "F32", "F16", "BF16", "Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q5_1", "Q5_0", "Q4_K_M", "Q4_K_S",
    "Q4_1", "Q4_0", "Q3_K_L", "Q3_K_M", "Q3_K_S", "Q2_K", "IQ4_NL", "IQ4_XS", "IQ3_M", "IQ3_S",
    "IQ3_XS", "IQ3_XXS",
)  # fmt: skip
# HF model_type -> GGUF architecture of the models qfeat reads GGUF weights back into.
GGUF_ARCHITECTURES = {"gpt_neox": "gptneox"}
GGUF_IMATRIX_TYPES = ("Q2_K_S", "IQ2_M", "IQ2_S", "IQ2_XS", "IQ2_XXS", "IQ1_M", "IQ1_S")
# Methods a noise control can match: they rewrite the target weights in place (fake quantization
# or pruning), so each matrix's error is W_method − W; module-replacing methods are not read back.
NOISE_MATCHES = ("rtn", "hqq", "quanto", "magnitude")

METHODS: Registry[type["CompressionConfig"]] = Registry("compression")


def _targets() -> list[str]:
    return list(TARGETS)


def expand_targets(targets: list[str]) -> tuple[str, ...]:
    """The module kinds a `targets` list names (a group stands for its kinds), in KINDS order."""
    named = {k for t in targets for k in GROUPS.get(t, (t,))}
    return tuple(k for k in KINDS if k in named)


def check_selection(targets: list[str], blocks: list[int] | None, where: str) -> None:
    """Known, non-empty module kinds or groups; blocks null or distinct non-negative indices."""
    valid = [*TARGETS, *KINDS]
    if not targets or set(targets) - set(valid):
        raise QfeatError(f"{where}.targets={list(targets)}; choose from {valid}")
    if blocks is not None and (not blocks or min(blocks) < 0 or len(set(blocks)) != len(blocks)):
        raise QfeatError(
            f"{where}.blocks={list(blocks)}; give distinct block indices >= 0 (null: every block)"
        )


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
    # It takes a bit-width per module (compression=mixed may use it as its method).
    mixable: ClassVar[bool] = False
    # Options added after RESULTS_VERSION 2 -> the value that leaves them out of a job key.
    key_neutral: ClassVar[dict[str, Any]] = {}

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

    def key_fields(self) -> dict[str, Any]:
        """The options that determine a job's result: every field, except an option added
        after RESULTS_VERSION 2 while it holds its neutral value (older keys stay valid)."""
        whole, out = asdict(self), {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in self.key_neutral and value == self.key_neutral[f.name]:
                continue
            is_method = isinstance(value, CompressionConfig)
            out[f.name] = value.key_fields() if is_method else whole[f.name]
        return out

    def selected_blocks(self) -> set[int]:
        """The block indices its options name (checked against the model's depth)."""
        return set()

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
    """A method that compresses the linear layers of the chosen module kinds (or groups of
    them) of the chosen blocks; embeddings, unembedding, norms, biases and every other linear
    layer stay bit-identical to FP."""

    targets: list[str] = field(default_factory=_targets)  # groups (attention, mlp) or KINDS
    blocks: list[int] | None = None  # block indices compressed; null: every block
    key_neutral: ClassVar[dict[str, Any]] = {"blocks": None}

    def check_same_selection(self, partner: "TargetedConfig", role: str, why: str) -> None:
        """`partner` (compression.<role>) selects the same module kinds and blocks as this."""
        for option in ("targets", "blocks"):
            mine, theirs = getattr(self, option), getattr(partner, option)
            if (None if mine is None else list(mine)) != (None if theirs is None else list(theirs)):
                raise QfeatError(
                    f"compression.{option}={mine} but compression.{role}.{option}={theirs}: {why}"
                )

    def selected_blocks(self) -> set[int]:
        """The blocks it compresses when only some are chosen."""
        return set(self.blocks or ())

    def check(self) -> None:
        """A known, non-empty selection, then the method's own values."""
        check_selection(list(self.targets), self.blocks, "compression")
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
    mixable: ClassVar[bool] = True

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
        self.check_same_selection(
            self.baseline, "baseline", "a matched pair compresses the same weights"
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
        self.check_same_selection(self.match, "match", "the noise goes on the weights it matches")


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
    mixable: ClassVar[bool] = True


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


@method
@dataclass
class GGUFConfig(CompressionConfig):
    """llama.cpp's GGUF quantization: its own converter and quantizer (llama_model_quantize, with
    its per-tensor type policy, embedding and unembedding included), read back and dequantized
    into the HF model; `deployed` also runs llama.cpp itself on the measured tokens."""

    name: str = "gguf"
    type: str = "Q4_K_M"  # a llama.cpp file type (llama-quantize's name): GGUF_TYPES
    imatrix: bool = False  # an importance matrix from llama.cpp on the calibration slice
    calibration_sequences: int = II("calibration_sequences")  # used with imatrix=true
    fp_embeddings: bool = False  # token embedding and output stay F32, as the other methods
    deployed: bool = True  # also measure llama.cpp's own forward (its residual and log-probs)
    requires: ClassVar[tuple[str, ...]] = ("llama_cpp", "gguf")

    @property
    def needs_calibration(self) -> bool:
        """The importance matrix is computed on the calibration slice."""
        return self.imatrix

    def check(self) -> None:
        """A file type llama.cpp quantizes to and gguf-py reads back; an imatrix where needed."""
        super().check()
        known = (*GGUF_TYPES, *GGUF_IMATRIX_TYPES)
        if self.type not in known:
            raise QfeatError(
                f"compression.type={self.type!r} is not a GGUF type qfeat runs; use one of "
                f"{', '.join(known)}"
            )
        if self.type in GGUF_IMATRIX_TYPES and not self.imatrix:
            raise QfeatError(
                f"compression.type={self.type} needs an importance matrix: "
                "add compression.imatrix=true"
            )
        if self.imatrix:
            _check_calibration(self)


@dataclass
class PartBits:
    """One part of a mixed-precision config: these module kinds of these blocks at `bits`."""

    targets: list[str] = MISSING  # module kinds or groups, as compression.targets
    bits: int = MISSING
    blocks: list[int] | None = None  # null: every block


def _every_layer_at_bits() -> list[PartBits]:
    return [PartBits(targets=list(TARGETS), bits=II("bits"))]


# Options a mixed config sets per part, never through `options`.
PER_PART = ("name", "bits", "targets", "blocks", "calibration_sequences")


@method
@dataclass
class MixedConfig(CompressionConfig):
    """Per-module bit-widths: each part (module kinds × blocks) is quantized by `method` at its
    own bits with the method's `options`, in one application of the method (GPTQ calibrates
    every part in one pass); a matrix no part selects stays FP. qfeat-plan writes one, and
    `compression.parts` can be given by hand."""

    name: str = "mixed"
    method: str = "rtn"  # a method that takes a bit-width per module: rtn or gptq
    options: dict[str, Any] = field(default_factory=dict)  # its other options, e.g. group_size
    parts: list[PartBits] = field(default_factory=_every_layer_at_bits)  # default: rtn's job
    calibration_sequences: int = II("calibration_sequences")  # used when the method calibrates
    for_model: str | None = None  # a plan's model (content digest or hub id), checked at launch

    @property
    def base(self) -> type[CompressionConfig]:
        """The config class of the method each part runs."""
        if self.method not in METHODS.names():
            raise QfeatError(f"compression.method={self.method!r} is not a method")
        return METHODS.get(self.method)

    @property
    def needs_calibration(self) -> bool:
        """Whether its method calibrates."""
        return self.base.calibrated

    @property
    def weight_bits(self) -> int | None:
        """One bit-width only when every part has the same."""
        bits = {p.bits for p in self.parts}
        return bits.pop() if len(bits) == 1 else None

    def part_configs(self) -> list[CompressionConfig]:
        """Each part as its method's own typed config (checked by that method's rules)."""
        out = []
        for i, part in enumerate(self.parts):
            own = {"bits": part.bits, "targets": list(part.targets), "blocks": part.blocks}
            if "calibration_sequences" in {f.name for f in fields(self.base)}:
                own["calibration_sequences"] = self.calibration_sequences
            try:
                node = OmegaConf.merge(OmegaConf.structured(self.base), self.options, own)
                out.append(OmegaConf.to_object(node))
            except OmegaConfBaseException as err:
                raise QfeatError(
                    f"compression.parts[{i}] as {self.method}: {str(err).splitlines()[0]}"
                ) from err
        return out

    def selected_blocks(self) -> set[int]:
        """Every block a part names."""
        return set().union(*(p.blocks or () for p in self.parts))

    def key_fields(self) -> dict[str, Any]:
        """Its options without the plan's model guard (the model is in the key) and, for a
        method that does not calibrate, without calibration_sequences."""
        out = super().key_fields()
        out.pop("for_model")
        if not self.needs_calibration:
            out.pop("calibration_sequences")
        return out

    def check(self) -> None:
        """A mixable method, its own options only, parts that do not overlap; each part's
        config passes its method's checks."""
        if not self.base.mixable:
            mixable = [n for n in METHODS.names() if METHODS.get(n).mixable]
            raise QfeatError(f"compression.method={self.method}; mixed precision takes {mixable}")
        per_part = sorted(set(self.options) & set(PER_PART))
        if per_part:
            raise QfeatError(f"compression.options sets {per_part}: each part sets its own")
        if not self.parts:
            raise QfeatError("compression=mixed needs compression.parts (write them: qfeat-plan)")
        for i, part in enumerate(self.parts):
            check_selection(list(part.targets), part.blocks, f"compression.parts[{i}]")
            for j, other in enumerate(self.parts[:i]):
                if shared := overlap(other, part):
                    raise QfeatError(f"compression.parts[{j}] and [{i}] both select {shared}")
        if self.needs_calibration:
            _check_calibration(self)
        for module in self.base.requires:
            libraries.require(module, f"compression=mixed with method={self.method}")
        for i, config in enumerate(self.part_configs()):
            try:
                config.check()
            except QfeatError as err:
                raise QfeatError(f"compression.parts[{i}]: {err}") from err


def overlap(a: PartBits, b: PartBits) -> str:
    """What two parts both select ('' if nothing): kinds, and the blocks they share."""
    kinds = [k for k in expand_targets(list(a.targets)) if k in expand_targets(list(b.targets))]
    if a.blocks is None or b.blocks is None:
        blocks = sorted(set(a.blocks or b.blocks or []))
    else:
        blocks = sorted(set(a.blocks) & set(b.blocks))
        if not blocks:
            return ""
    where = f" of blocks {blocks}" if blocks else ""
    return f"{', '.join(kinds)}{where}" if kinds else ""
