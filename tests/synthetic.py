"""Sweeps with known numbers for the analysis tests, written through the results contract
itself: each summary is a sweep.results.summary.Summary built from its features frame by the
job's own derive functions (no hand-written summary.json)."""

import math
from pathlib import Path

import numpy as np
import pandas as pd

from sweep.base.atomic import write_json_atomic
from sweep.config.compression import KINDS, TARGETS, expand_targets
from sweep.derive.classes import Rules, class_counts, class_fractions, uncertain
from sweep.derive.predict import predict_survival
from sweep.results.columns import FEATURE_COLUMNS
from sweep.results.files import FEATURES_FILE, JOBS_DIR, SUMMARY_FILE
from sweep.results.summary import (
    FidelitySummary,
    GGUFRecord,
    Matched,
    Metrics,
    Prediction,
    ReferenceInfo,
    SaeFitPair,
    Summary,
    Uncertainty,
)

HOOK = "blocks.1.hook_resid_post"
# 8 active features (5 survived, 2 blurred, 1 destroyed) and 2 inactive ones.
R = [0.99, 0.95, 0.93, 0.92, 0.91, 0.8, 0.6, 0.1, np.nan, np.nan]


def features_frame(r: list[float], hook: str = HOOK) -> pd.DataFrame:
    """A features.parquet frame with every contract column and dtype; classes follow r."""
    n = len(r)
    r_arr = np.asarray(r, dtype=np.float64)
    active = ~np.isnan(r_arr)
    cls = np.where(r_arr >= 0.9, "survived", np.where(r_arr >= 0.5, "blurred", "destroyed"))
    data = {c: np.linspace(0.1, 1.0, n) for c, (t, _) in FEATURE_COLUMNS.items() if t == "float64"}
    data.update({c: np.arange(n) + 5 for c, (t, _) in FEATURE_COLUMNS.items() if t == "int64"})
    r_lo, r_hi = r_arr - 0.02, np.minimum(r_arr + 0.02, 1.0)  # r ± 0.02: 0.91 is uncertain
    data.update(
        sae=hook,
        feature=np.arange(n),
        r=r_arr,
        active=active,
        silenced=np.zeros(n, bool),
        damage=np.where(active, 1 - r_arr, np.nan),
        r_lo=r_lo,
        r_hi=r_hi,
        r_defined=np.where(active, 1.0, np.nan),
        uncertain=uncertain(r_arr, r_lo, r_hi, active, Rules(10, 0.9, 0.5)),
        **{"class": np.where(active, cls, "inactive")},
    )
    frame = pd.DataFrame(data)[list(FEATURE_COLUMNS)]
    return frame.astype({k: v[0] for k, v in FEATURE_COLUMNS.items()})


def nested(flat: dict) -> dict:
    """{'a.b': 1} → {'a': {'b': 1}}: a summary's config from dotted keys."""
    out: dict = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def summary_of(
    key: str,
    frame: pd.DataFrame,
    compression: str = "rtn",
    bits: int | None = 4,
    config: dict | None = None,
    sparsity: float | None = None,
    prediction: dict[str, Prediction] | None = None,
    matched: Matched | None = None,
    q_ppl: float = 12.5,
    sae_fit: dict[str, SaeFitPair] | None = None,
    fidelity: dict[str, FidelitySummary] | None = None,
    gguf: GGUFRecord | None = None,
    uncertainty: Uncertainty | None = None,
    matrices: int = 16,
) -> Summary:
    """A job's Summary from its features frame (fp_ppl 10, kl 0.25; config: dotted keys;
    `matrices` compressed)."""
    counts = class_counts(frame)
    by_sae = dict(list(frame.groupby("sae", sort=False)))
    bits_key = {"compression.bits": bits} if bits is not None else {}
    return Summary(
        key=key,
        created="2026-01-01T00:00:00+00:00",
        git_commit=None,
        versions={"numpy": "1"},
        device="cpu",
        model="toy",
        saes=list(by_sae),
        compression=compression,
        bits=bits,
        reference=ReferenceInfo(key="ref0", computed=True),
        config=nested(
            {
                "model.name": "toy",
                "compression.name": compression,
                **bits_key,
                "survival.survived": 0.9,
                "survival.blurred": 0.5,
                "seed": 0,
                **(config or {}),
            }
        ),
        metrics=Metrics(
            **counts,
            fp_ppl=10.0,
            q_ppl=q_ppl,
            delta_ppl=q_ppl - 10.0,
            fp_loss=math.log(10.0),
            q_loss=math.log(q_ppl),
            kl_mean=0.25,
            kl_method="exact",
            n_sequences=4,
            n_measured_tokens=int(frame["n_tokens"].iloc[0]),
            n_predicted_tokens=64,
            n_compressed_matrices=matrices,
            frac_degraded=1.0 - counts["frac_survived"],
            sparsity=sparsity,
        ),
        per_sae={hook: class_fractions(part) for hook, part in by_sae.items()},
        prediction=prediction
        if prediction is not None
        else {hook: predict_survival(part) for hook, part in by_sae.items()},
        matched=matched,
        sae_fit=sae_fit,
        fidelity=fidelity,
        uncertainty=uncertainty,
        timings_s={"measure": 1.0},
        wall_time_s=2.0,
        gguf=gguf,
    )


def write_job(
    sweep: Path,
    key: str,
    compression: str = "rtn",
    bits: int | None = 4,
    r=R,
    frame: pd.DataFrame | None = None,
    **summary,
) -> Path:
    """Write one job's features.parquet and summary.json under sweep/jobs/key."""
    d = sweep / JOBS_DIR / key
    d.mkdir(parents=True)
    frame = features_frame(list(r)) if frame is None else frame
    frame.to_parquet(d / FEATURES_FILE, index=False)
    record = summary_of(key, frame, compression, bits, **summary)
    write_json_atomic(d / SUMMARY_FILE, record.to_json())
    return d


def two_sae_sweep(root: Path) -> Path:
    """rtn 4 bits on two SAEs of one model, and the same at 3 bits."""
    other = features_frame(R, hook="blocks.3.hook_resid_post")
    frame = pd.concat([features_frame(R), other], ignore_index=True).astype({"sae": "string"})
    write_job(root, "a" * 16, frame=frame)
    write_job(root, "b" * 16, bits=3, frame=frame)
    return root


ATTRIBUTION_HOOKS = ("blocks.0.hook_resid_post", "blocks.1.hook_resid_post")
ATTRIBUTION_BLOCKS = (0, 1)
INACTIVE = (3, 9)  # features inactive in every job (FP never fires enough)


def part_frame(damage: np.ndarray) -> pd.DataFrame:
    """Both ATTRIBUTION_HOOKS' features with r = 1 − damage (one row of `damage` per hook)."""
    frames = []
    for hook, d in zip(ATTRIBUTION_HOOKS, damage, strict=True):
        r = np.clip(1 - d, -1, 1)
        r[list(INACTIVE)] = np.nan
        frames.append(features_frame(list(r), hook=hook))
    return pd.concat(frames, ignore_index=True).astype({"sae": "string"})


def attribution_sweep(
    root: Path, bits: tuple[int, ...] = (3,), n: int = 12, seed: int = 0
) -> dict[str, tuple[int, list[str], list[int] | None]]:
    """Per bits: a single-part job for each module kind of blocks 0 and 1 (one matrix each), a
    block-0 job and the whole-model job (8 matrices), on two SAEs of n features. Damage is
    drawn at random; the whole model's is the parts' sum scaled by a random factor around 1.
    No survival prediction is fitted (it is slow and beside the point here).
    Returns each job's key → (bits, compression.targets, compression.blocks)."""
    rng = np.random.default_rng(seed)
    jobs: dict[str, tuple[int, list[str], list[int] | None]] = {}
    for b in bits:
        parts = [([k], [blk]) for blk in ATTRIBUTION_BLOCKS for k in KINDS]
        damage = {i: rng.exponential(0.04 * (i + 1), size=(2, n)) for i in range(len(parts))}
        summed = sum(damage.values())
        selected = [*parts, (list(TARGETS), [0]), (list(TARGETS), None)]
        damage[len(parts)] = sum(damage[i] for i in range(len(KINDS)))
        damage[len(parts) + 1] = summed * rng.uniform(0.5, 1.8, size=summed.shape)
        for i, (targets, blocks) in enumerate(selected):
            key = f"{b:02d}{i:014d}"
            config = {"compression.targets": targets, "compression.blocks": blocks}
            count = len(expand_targets(targets)) * len(blocks or ATTRIBUTION_BLOCKS)
            write_job(
                root,
                key,
                bits=b,
                frame=part_frame(damage[i]),
                config=config,
                matrices=count,
                prediction={},
            )
            jobs[key] = (b, targets, blocks)
    return jobs
