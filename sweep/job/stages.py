"""The stages of one job, each a function with typed inputs and outputs (sweep.job.run reads
them top to bottom): tokens → load → FP reference → compress → measure → derive → fidelity."""

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd
import torch
from omegaconf import DictConfig
from sae_lens import SAE
from transformers import PreTrainedModel

from sweep.base.errors import QfeatError
from sweep.config.compression import CompressionConfig, GGUFConfig
from sweep.derive.classes import Rules, class_counts, class_fractions
from sweep.derive.convergence import BootstrapPlan, assess
from sweep.derive.fidelity import measure_fidelity
from sweep.derive.overlap import damage_overlap
from sweep.derive.predict import predict_survival, sae_weight_stats
from sweep.derive.result_tables import contexts_frame, token_frame
from sweep.derive.survival import feature_frame
from sweep.inputs.data import build_token_sets
from sweep.inputs.hooked import HookedLM
from sweep.inputs.models import load_hf_model, load_tokenizer, resolve_device, tl_processing
from sweep.inputs.saes import check_sae_fits, check_sae_fits_config, load_saes, shared_model_kwargs
from sweep.job.compress import Variants, add_deployed, build_variants
from sweep.passes.blocks import block_of_sequence
from sweep.passes.logprobs import kl_method
from sweep.passes.measure import Measurement, measure
from sweep.passes.perplexity import sliding_perplexity
from sweep.passes.reference import Reference, compute_reference
from sweep.passes.reference_cache import load_or_compute, reference_key, weights_digest
from sweep.passes.saefit import FitTotals
from sweep.results.files import CONTEXTS_FILE, DEPLOYED_FEATURES_FILE, TOKENS_FILE
from sweep.results.summary import (
    BaselineMetrics,
    Behaviour,
    ClassFractions,
    Deployed,
    FidelitySummary,
    GGUFRecord,
    Matched,
    Metrics,
    Prediction,
    SaeFitPair,
    Uncertainty,
)

log = logging.getLogger("qfeat")


@dataclass
class TokenSets:
    """The measured sequences and the disjoint calibration slice, with their tokenizer."""

    tokens: torch.Tensor  # [n_sequences, seq_len], BOS first
    calibration: torch.Tensor  # [n_calibration, seq_len]; empty unless the method calibrates
    tokenizer: Any


@dataclass
class Loaded:
    """The job's SAEs and FP model on its device, and how the model is read at their hooks."""

    device: torch.device
    saes: dict[str, SAE]
    fp_model: PreTrainedModel | None  # compressed in place by the compress stage
    processing: dict  # TransformerLens processing the SAEs expect

    def hooked(self, model: PreTrainedModel) -> HookedLM:
        """`model` read at the SAEs' hooks as they expect."""
        return HookedLM.wrap(model, self.processing)


@dataclass
class FPReference:
    """The FP reference of the job's model, SAEs and tokens, and whether this job computed it."""

    reference: Reference
    key: str
    computed: bool


@dataclass
class Measured:
    """What the compressed pass produced, per variant, and the FP SAE-fit totals."""

    variants: Variants
    result: Measurement
    fits: dict[str, FitTotals]
    sliding: dict[str, float] = field(default_factory=dict)


@dataclass
class Findings:
    """Everything derived from the measurement: the features table, the other result tables by
    file name, and the summary's records (fidelity is added by its own stage)."""

    frame: pd.DataFrame
    tables: dict[str, pd.DataFrame]
    metrics: Metrics
    per_sae: dict[str, ClassFractions]
    prediction: dict[str, Prediction]
    matched: Matched | None
    sae_fit: dict[str, SaeFitPair] | None
    uncertainty: Uncertainty | None = None
    fidelity: dict[str, FidelitySummary] = field(default_factory=dict)
    gguf: GGUFRecord | None = None


# The compress stage: (config, method, loaded inputs, token sets) -> the variants to measure.
CompressStage = Callable[[DictConfig, CompressionConfig, Loaded, TokenSets], Variants]


def first_position(cfg: DictConfig) -> int:
    """The first measured position of each sequence (1: BOS excluded)."""
    return int(cfg.survival.exclude_first_position)


def sequence_blocks(cfg: DictConfig, n_sequences: int) -> torch.Tensor:
    """The bootstrap block of each measured sequence (contiguous groups of whole sequences)."""
    return block_of_sequence(n_sequences, cfg.survival.bootstrap.n_blocks)


def bootstrap_plan(cfg: DictConfig, sets: TokenSets) -> BootstrapPlan:
    """The job's token bootstrap: its blocks, resamples, level and seed."""
    sizes = torch.bincount(sequence_blocks(cfg, len(sets.tokens))).tolist()
    boot = cfg.survival.bootstrap
    rows = sets.tokens.shape[1] - first_position(cfg)
    return BootstrapPlan(sizes, rows, boot.n_boot, boot.level, cfg.seed)


def fit_sequences(cfg: DictConfig) -> int:
    """How many leading sequences the SAE-fit metrics use (0: off)."""
    return min(cfg.eval.sae_fit_sequences, cfg.data.n_sequences)


def load_tokens(cfg: DictConfig, method: CompressionConfig) -> TokenSets:
    """The tokenizer, the measured sequences and, for a method that calibrates, its slice."""
    tokenizer = load_tokenizer(cfg.model)
    n_calibration = method.calibration_sequences if method.needs_calibration else 0
    tokens, calibration = build_token_sets(cfg.data, tokenizer, n_calibration)
    return TokenSets(tokens, calibration, tokenizer)


def check_watchlist(watch: list[int], saes: dict[str, SAE]) -> None:
    """Every watched feature id must exist in every SAE of the job."""
    for hook, sae in saes.items():
        bad = [f for f in watch if f >= sae.cfg.d_sae]
        if bad:
            raise QfeatError(f"survival.watch {bad} beyond the {sae.cfg.d_sae} features of {hook}")


def load_inputs(cfg: DictConfig) -> Loaded:
    """The SAEs, then the FP model, each checked against the other before any forward pass."""
    device = resolve_device(cfg.runtime.device)
    saes = load_saes(cfg.sae, device)
    check_watchlist(list(cfg.survival.watch), saes)
    fp_model = load_hf_model(cfg.model, device, cfg.runtime.half_on_cpu)
    for sae in saes.values():
        check_sae_fits_config(sae, fp_model.config)
    return Loaded(device, saes, fp_model, tl_processing(shared_model_kwargs(saes)))


def reference_identity(cfg: DictConfig, keyed: dict, loaded: Loaded) -> dict:
    """Everything besides the tokens that determines the FP reference, by content: local
    checkpoints and SAEs enter by digest, never by path, so checkouts and nodes share it."""
    return {
        "model": keyed["model"],
        "model_revision": getattr(loaded.fp_model.config, "_commit_hash", None),
        "model_files": keyed["inputs"]["model"],
        "sae": keyed["sae"],
        "sae_weights": [weights_digest(sae) for sae in loaded.saes.values()],
        "processing": loaded.processing,
        "measured_by": "HF forward hooks",  # sweep/inputs/hooked.py
        "first": first_position(cfg),
        "kl_top_k": cfg.eval.kl_top_k,
        "sae_fit_sequences": cfg.eval.sae_fit_sequences,
        "sliding_window_stride": cfg.eval.sliding_window_stride,
    }


def fp_reference(cfg: DictConfig, keyed: dict, loaded: Loaded, sets: TokenSets) -> FPReference:
    """The FP reference from the shared cache, or computed (once, under a lock) and cached."""
    first, stride, n_fit = first_position(cfg), cfg.eval.sliding_window_stride, fit_sequences(cfg)

    def compute() -> Reference:
        fp = loaded.hooked(loaded.fp_model)
        for sae in loaded.saes.values():
            check_sae_fits(sae, fp)
        ref = compute_reference(
            fp,
            loaded.saes,
            sets.tokens,
            cfg.runtime.batch_size,
            first,
            cfg.eval.kl_top_k,
            cfg.runtime.progress,
            fit=FitTotals(loaded.saes, n_fit, first) if n_fit else None,
        )
        if stride:
            bos = sets.tokenizer.bos_token_id
            ref.sliding_ppl = sliding_perplexity(fp, sets.tokens, stride, bos, ref.nll)
        return ref

    key = reference_key(reference_identity(cfg, keyed, loaded), sets.tokens)
    reference, computed = load_or_compute(cfg.reference_cache, key, compute)
    log.info("FP reference %s %s", key, "computed" if computed else "loaded from cache")
    return FPReference(reference, key, computed)


def compress(
    cfg: DictConfig, method: CompressionConfig, loaded: Loaded, sets: TokenSets
) -> Variants:
    """The job's method applied to the FP model in place (or a matched pair of it); a GGUF
    file is also run by llama.cpp itself when its config asks for it."""
    variants = build_variants(
        method, loaded.fp_model, loaded.hooked, sets.calibration, cfg.runtime.batch_size
    )
    if isinstance(method, GGUFConfig) and method.deployed:
        add_deployed(variants, list(loaded.saes), sets.tokens.shape[1])
    return variants


def measure_variants(
    cfg: DictConfig, ref: FPReference, variants: Variants, loaded: Loaded, sets: TokenSets
) -> Measured:
    """The compressed pass over every variant, then each one's sliding-window perplexity."""
    for sae in loaded.saes.values():
        check_sae_fits(sae, variants.models[variants.primary])
    first, n_fit = first_position(cfg), fit_sequences(cfg)
    fits = {variants.primary: FitTotals(loaded.saes, n_fit, first)} if n_fit else {}
    result = measure(
        ref.reference,
        variants.models,
        loaded.saes,
        sets.tokens,
        cfg.runtime.batch_size,
        first,
        cfg.runtime.progress,
        cfg.eval.contexts_k,
        fits,
        sequence_blocks(cfg, len(sets.tokens)),
    )
    measured = Measured(variants, result, fits)
    if stride := cfg.eval.sliding_window_stride:
        bos = sets.tokenizer.bos_token_id
        measured.sliding = {
            name: sliding_perplexity(model, sets.tokens, stride, bos, result.variants[name].nll)
            for name, model in variants.models.items()
            if name != variants.deployed
        }
    return measured


def behaviour(result: Measurement, name: str) -> Behaviour:
    """Perplexity, ΔPPL and KL of one variant against the FP model on the measured tokens."""
    v = result.variants[name]
    return Behaviour(
        fp_ppl=result.fp_loss.perplexity,
        q_ppl=v.loss.perplexity,
        delta_ppl=v.loss.perplexity - result.fp_loss.perplexity,
        fp_loss=result.fp_loss.mean,
        q_loss=v.loss.mean,
        kl_mean=v.kl.mean,
    )


def headline(
    frame: pd.DataFrame, ref: FPReference, m: Measured, sets: TokenSets, vocab: int
) -> Metrics:
    """The job's metrics over every SAE's features, with the primary variant's behaviour."""
    primary = m.variants.primary
    sliding = {}
    if m.sliding:
        fp_sliding = ref.reference.sliding_ppl
        sliding = {
            "fp_ppl_sliding": fp_sliding,
            "q_ppl_sliding": m.sliding[primary],
            "delta_ppl_sliding": m.sliding[primary] - fp_sliding,
        }
    counts = class_counts(frame)
    return Metrics(
        **counts,
        **asdict(behaviour(m.result, primary)),
        kl_method=kl_method(ref.reference.topk_ids.shape[-1], vocab),
        n_sequences=len(sets.tokens),
        n_measured_tokens=next(iter(m.result.variants[primary].stats.values())).n,
        n_predicted_tokens=m.result.fp_loss.count,
        n_compressed_matrices=m.variants.n_matrices,
        frac_degraded=1.0 - counts["frac_survived"],
        sparsity=m.variants.sparsity,
        bits_per_weight=m.variants.bits_per_weight,
        **sliding,
    )


def derive(
    cfg: DictConfig, ref: FPReference, m: Measured, loaded: Loaded, sets: TokenSets
) -> Findings:
    """Per-feature survival rows of every variant with their token-bootstrap intervals; the
    primary's metrics, per-SAE fractions, survival prediction, SAE fit, uncertainty and
    convergence, the matched overlap, and the contexts and tokens tables."""
    weights = {hook: sae_weight_stats(sae) for hook, sae in loaded.saes.items()}
    plan, rules = bootstrap_plan(cfg, sets), Rules.of(cfg.survival)
    counts = plan.counts() if plan.on else None
    frames, uncertainty = {}, {}
    for name, v in m.result.variants.items():
        intervals, uncertainty[name] = assess(v.blocks, plan, counts, rules)
        rows = [
            feature_frame(v.stats[h], h, cfg.survival, weights[h], intervals.get(h))
            for h in loaded.saes
        ]
        frames[name] = pd.concat(rows, ignore_index=True)
    variants, first = m.variants, first_position(cfg)
    frame = frames[variants.primary]
    by_sae = dict(list(frame.groupby("sae", sort=False)))
    tables = {TOKENS_FILE: token_frame(sets.tokens, sets.tokenizer)}
    if cfg.eval.contexts_k:
        contexts = m.result.variants[variants.primary].contexts
        rows_per_seq = sets.tokens.shape[1] - first
        tables[CONTEXTS_FILE] = contexts_frame(contexts, frame, rows_per_seq, first)
    matched = None
    if variants.match is not None:
        base = variants.baseline
        matched = Matched(
            baseline_method=base,
            search=variants.match,
            baseline=BaselineMetrics(
                **class_counts(frames[base]), **asdict(behaviour(m.result, base))
            ),
            overlap=damage_overlap(frames[base], frame),
        )
    gguf = None
    if variants.gguf is not None:
        gguf = gguf_record(m, frames)
        if variants.deployed is not None:
            tables[DEPLOYED_FEATURES_FILE] = frames[variants.deployed]
    sae_fit = None
    if m.fits:
        fitted = m.fits[variants.primary].metrics()
        sae_fit = {h: SaeFitPair(fp=ref.reference.sae_fit[h], q=fitted[h]) for h in loaded.saes}
    return Findings(
        frame=frame,
        tables=tables,
        metrics=headline(frame, ref, m, sets, variants.models[variants.primary].d_vocab),
        per_sae={hook: class_fractions(f) for hook, f in by_sae.items()},
        prediction={hook: predict_survival(f, seed=cfg.seed) for hook, f in by_sae.items()},
        matched=matched,
        sae_fit=sae_fit,
        gguf=gguf,
        uncertainty=uncertainty[variants.primary],
    )


def gguf_record(m: Measured, frames: dict[str, pd.DataFrame]) -> GGUFRecord:
    """The GGUF file's record; with llama.cpp's own forward measured, its classes, behaviour,
    and the gap between its next-token log-probs and qfeat's forward of the same weights."""
    variants, artifact = m.variants, m.variants.gguf
    deployed = None
    if (name := variants.deployed) is not None:
        gap = (m.result.variants[name].nll - m.result.variants[variants.primary].nll).abs()
        runtime = variants.models[name].runtime.settings
        deployed = Deployed(
            **class_counts(frames[name]),
            **asdict(behaviour(m.result, name)),
            runtime=runtime,
            logp_gap_mean=float(gap.mean()),
            logp_gap_max=float(gap.max()),
            overlap=damage_overlap(frames[variants.primary], frames[name]),
        )
    return GGUFRecord(
        type=artifact.type,
        bits_per_weight=artifact.bits_per_weight,
        matrix_types=artifact.matrix_types,
        n_fallback=artifact.n_fallback,
        imatrix=artifact.imatrix,
        seconds=artifact.seconds,
        deployed=deployed,
    )


def fidelity(cfg: DictConfig, found: Findings, m: Measured, loaded: Loaded, sets: TokenSets):
    """Steering and ablation fidelity of a sample of features: in the compressed model, then
    (the compressed model freed) in the reloaded FP model; fills `found` in place."""
    primary = m.variants.models[m.variants.primary]
    found.fidelity = measure_fidelity(
        cfg,
        found.frame,
        loaded.saes,
        primary,
        m.variants.models.clear,
        lambda: loaded.hooked(load_hf_model(cfg.model, loaded.device, cfg.runtime.half_on_cpu)),
        sets.tokens[: cfg.fidelity.n_sequences],
        first_position(cfg),
    )
