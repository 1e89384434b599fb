"""Orchestration of one job: validate, skip if done, load, compress, measure, record."""

import json
import logging
import time
from collections.abc import Callable
from contextlib import contextmanager
from datetime import datetime, timezone
from functools import partial

import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf
from transformers import PreTrainedModel

from sweep import tracking
from sweep.compressors import needs_calibration
from sweep.compressors.variants import Variants, build_variants
from sweep.constants import (
    CONTEXTS_FILE,
    FEATURES_FILE,
    SUMMARY_FILE,
    TOKENS_FILE,
)
from sweep.data import build_token_sets
from sweep.errors import QfeatError
from sweep.extras import contexts_frame, token_frame
from sweep.fidelity import measure_fidelity
from sweep.hooked import HookedLM
from sweep.measure import Measurement, compute_reference, kl_method, measure
from sweep.models import load_hf_model, load_tokenizer, resolve_device, tl_processing
from sweep.overlap import damage_overlap
from sweep.perplexity import sliding_perplexity
from sweep.predict import predict_survival, sae_weight_stats
from sweep.record import (
    check_writable,
    git_commit,
    is_complete,
    job_dir,
    job_key,
    keyed_config,
    library_versions,
    write_json_atomic,
    write_parquet_atomic,
)
from sweep.reference import (
    Reference,
    check_cache_root,
    load_or_compute,
    reference_key,
    weights_digest,
)
from sweep.saefit import FitTotals
from sweep.saes import check_sae_fits, check_sae_fits_config, load_saes, shared_model_kwargs
from sweep.schema import validate
from sweep.survival import class_fractions, feature_frame

log = logging.getLogger("qfeat")


@contextmanager
def stage(name: str, timings: dict[str, float]):
    """Time a stage and log one line when it ends."""
    start = time.perf_counter()
    yield
    timings[name] = time.perf_counter() - start
    log.info("%-10s %7.2fs", name, timings[name])


def behaviour_metrics(result: Measurement, name: str) -> dict[str, float]:
    """Perplexity, ΔPPL and KL of one variant against the FP model on the measured tokens."""
    v = result.variants[name]
    return {
        "fp_ppl": result.fp_loss.perplexity,
        "q_ppl": v.loss.perplexity,
        "delta_ppl": v.loss.perplexity - result.fp_loss.perplexity,
        "fp_loss": result.fp_loss.mean,
        "q_loss": v.loss.mean,
        "kl_mean": v.kl.mean,
    }


def matched_metrics(variants: Variants, frames: dict, result: Measurement) -> dict:
    """Search outcome and the overlap of damage between the pruned and the reference model."""
    (ref_name,) = frames.keys() - {variants.primary}
    return {
        "reference_method": ref_name,
        "search": variants.match.as_dict(),
        "reference": {
            **class_fractions(frames[ref_name]),
            **behaviour_metrics(result, ref_name),
        },
        "overlap": damage_overlap(frames[ref_name], frames[variants.primary]),
    }


# Builds the compressed model(s) a job measures from (config, FP HF model, hooked, calibration).
VariantBuilder = Callable[[DictConfig, PreTrainedModel, Callable, torch.Tensor], Variants]


def default_variants(cfg, hf_model, hooked, calibration) -> Variants:
    """The sweep's variants: cfg.compression applied to the FP model in place."""
    return build_variants(cfg, hf_model, hooked, calibration, cfg.runtime.batch_size)


def run(cfg: DictConfig, variants_of: VariantBuilder = default_variants) -> dict:
    """Run one job and return its metrics (read back from disk when the job was already done)."""
    wall = time.perf_counter()
    validate(cfg)
    key = job_key(cfg)
    out = job_dir(cfg, key)
    if is_complete(out, key):
        log.info("skipped: complete result for key %s at %s", key, out)
        return {**json.loads((out / SUMMARY_FILE).read_text())["metrics"], "skipped": True}
    check_writable(out)
    log.info("job %s -> %s", key, out)
    with tracking.session(cfg, key) as wandb_run:
        summary, frame, extras = measure_job(cfg, key, variants_of)
        for name, table in extras.items():
            write_parquet_atomic(out / name, table)
        write_parquet_atomic(out / FEATURES_FILE, frame)
        summary["wall_time_s"] = time.perf_counter() - wall
        write_json_atomic(out / SUMMARY_FILE, summary)
        tracking.log_result(wandb_run, summary, frame, out / SUMMARY_FILE, cfg.wandb.log_table)
    metrics = summary["metrics"]
    log.info(
        "done %s: %d/%d active features survived (%.1f%%), ppl %.3f -> %.3f",
        key,
        metrics["n_survived"],
        metrics["n_active"],
        100 * metrics["frac_survived"],
        metrics["fp_ppl"],
        metrics["q_ppl"],
    )
    return metrics


def reference_identity(cfg: DictConfig, hf_model, saes: dict, processing: dict, first: int) -> dict:
    """Everything besides the tokens that determines the FP reference, by content: local
    checkpoints and SAEs enter by digest, never by path, so checkouts and nodes share it."""
    keyed = keyed_config(cfg)
    return {
        "model": keyed["model"],
        "model_revision": getattr(hf_model.config, "_commit_hash", None),
        "model_files": keyed["inputs"]["model"],
        "sae": keyed["sae"],
        "sae_weights": [weights_digest(sae) for sae in saes.values()],
        "processing": processing,
        "measured_by": "HF forward hooks",  # sweep/hooked.py (was a TransformerLens conversion)
        "first": first,
        "kl_top_k": cfg.eval.kl_top_k,
        "sae_fit_sequences": cfg.eval.sae_fit_sequences,
        "sliding_window_stride": cfg.eval.sliding_window_stride,
    }


def check_watchlist(watch, saes: dict) -> None:
    """Every watched feature id must exist in every SAE of the job."""
    for hook, sae in saes.items():
        bad = [f for f in watch if f >= sae.cfg.d_sae]
        if bad:
            raise QfeatError(f"survival.watch {bad} beyond the {sae.cfg.d_sae} features of {hook}")


def measure_job(
    cfg: DictConfig, key: str, variants_of: VariantBuilder = default_variants
) -> tuple[dict, pd.DataFrame, dict[str, pd.DataFrame]]:
    """The heavy part of a job: load, compress, measure; returns (summary, features frame,
    extra result tables by file name)."""
    torch.manual_seed(cfg.seed)
    if cfg.runtime.num_threads:
        torch.set_num_threads(cfg.runtime.num_threads)
    device = resolve_device(cfg.runtime.device)
    batch_size = cfg.runtime.batch_size
    first = int(cfg.survival.exclude_first_position)
    stride = cfg.eval.sliding_window_stride
    n_fit = min(cfg.eval.sae_fit_sequences, cfg.data.n_sequences)
    timings: dict[str, float] = {}
    check_cache_root(cfg.reference_cache)

    with stage("tokens", timings):
        tokenizer = load_tokenizer(cfg.model)
        comp = cfg.compression
        n_calibration = comp.calibration_sequences if needs_calibration(comp) else 0
        tokens, calibration = build_token_sets(cfg.data, tokenizer, n_calibration)
    with stage("load", timings):
        saes = load_saes(cfg.sae, device)
        check_watchlist(cfg.survival.watch, saes)
        hf_model = load_hf_model(cfg.model, device)
        for sae in saes.values():
            check_sae_fits_config(sae, hf_model.config)
        processing = tl_processing(shared_model_kwargs(saes))
        hooked = partial(HookedLM.wrap, processing=processing)

    def compute_fp(fp_weights) -> Reference:
        fp_model = hooked(fp_weights)
        for sae in saes.values():
            check_sae_fits(sae, fp_model)
        ref = compute_reference(
            fp_model,
            saes,
            tokens,
            batch_size,
            first,
            cfg.eval.kl_top_k,
            cfg.runtime.progress,
            fit=FitTotals(saes, n_fit, first) if n_fit else None,
        )
        if stride:
            bos = tokenizer.bos_token_id
            ref.sliding_ppl = sliding_perplexity(fp_model, tokens, stride, bos, ref.nll)
        return ref

    with stage("reference", timings):
        ref_key = reference_key(reference_identity(cfg, hf_model, saes, processing, first), tokens)
        reference, computed = load_or_compute(
            cfg.reference_cache, ref_key, partial(compute_fp, hf_model)
        )
        log.info("FP reference %s %s", ref_key, "computed" if computed else "loaded from cache")
    with stage("compress", timings):
        variants = variants_of(cfg, hf_model, hooked, calibration)
        del hf_model
        for sae in saes.values():
            check_sae_fits(sae, variants.models[variants.primary])
    fits = {variants.primary: FitTotals(saes, n_fit, first)} if n_fit else {}
    with stage("measure", timings):
        result = measure(
            reference,
            variants.models,
            saes,
            tokens,
            batch_size,
            first,
            cfg.runtime.progress,
            cfg.eval.contexts_k,
            fits,
        )
    if stride:
        with stage("sliding", timings):
            sliding = {
                name: sliding_perplexity(
                    model, tokens, stride, tokenizer.bos_token_id, result.variants[name].nll
                )
                for name, model in variants.models.items()
            }
    primary = variants.models[variants.primary]
    vocab = primary.d_vocab
    weights = {hook: sae_weight_stats(sae) for hook, sae in saes.items()}
    frames = {
        name: pd.concat(
            [feature_frame(v.stats[h], h, cfg.survival, weights[h]) for h in saes],
            ignore_index=True,
        )
        for name, v in result.variants.items()
    }
    frame = frames[variants.primary]
    fit_summary = None
    if n_fit:
        q_fit = fits[variants.primary].metrics()
        fit_summary = {h: {"fp": reference.sae_fit[h], "q": q_fit[h]} for h in saes}
    with stage("fidelity", timings):
        fidelity = measure_fidelity(
            cfg,
            frame,
            saes,
            primary,
            variants.models.clear,
            lambda: hooked(load_hf_model(cfg.model, device)),
            tokens[: cfg.fidelity.n_sequences],
            first,
        )
        del primary
    with stage("record", timings):
        extras = {TOKENS_FILE: token_frame(tokens, tokenizer)}
        if cfg.eval.contexts_k:
            contexts = result.variants[variants.primary].contexts
            extras[CONTEXTS_FILE] = contexts_frame(contexts, frame, tokens.shape[1] - first, first)
        by_sae = dict(list(frame.groupby("sae", sort=False)))
        metrics = {
            **class_fractions(frame),
            **behaviour_metrics(result, variants.primary),
            "kl_method": kl_method(reference.topk_ids.shape[-1], vocab),
            "n_sequences": len(tokens),
            "n_measured_tokens": next(iter(result.variants[variants.primary].stats.values())).n,
            "n_predicted_tokens": result.fp_loss.count,
            "n_compressed_matrices": variants.n_matrices,
            "sparsity": variants.sparsity,
        }
        metrics["frac_degraded"] = 1.0 - metrics["frac_survived"]
        if stride:
            metrics["fp_ppl_sliding"] = reference.sliding_ppl
            metrics["q_ppl_sliding"] = sliding[variants.primary]
            metrics["delta_ppl_sliding"] = sliding[variants.primary] - reference.sliding_ppl
        summary = {
            "key": key,
            "status": "complete",
            "created": datetime.now(timezone.utc).isoformat(),
            "git_commit": git_commit(),
            "versions": library_versions(),
            "device": str(device),
            "model": cfg.model.name,
            "saes": list(saes),
            "compression": variants.primary,
            "bits": cfg.bits,
            "reference": {"key": ref_key, "computed": computed},
            "config": OmegaConf.to_container(cfg, resolve=True),
            "metrics": metrics,
            "per_sae": {hook: class_fractions(f) for hook, f in by_sae.items()},
            "prediction": {hook: predict_survival(f, seed=cfg.seed) for hook, f in by_sae.items()},
            "matched": matched_metrics(variants, frames, result) if variants.match else None,
            "sae_fit": fit_summary,
            "fidelity": fidelity or None,
            "timings_s": timings,
        }
    return summary, frame, extras
