"""A 5-bit-width sweep with qfeat ÷ the naive way, on the same model, SAE and tokens.

python -m benchmarks.sweep_vs_naive [--shape pythia-70m] [--d-sae 32768] [--n-seq 16]
    [--repeats 1] [--json PATH]

Naive: for every bit-width, run FP and compressed models, keep dense codes for all tokens and
compute each feature's correlation after the fact (scipy.stats.pearsonr per feature: what a
notebook would do), with the loss from the same forward passes. qfeat: one FP reference, then
per bit-width one compressed pass as a job runs it (streaming statistics, top-16 contexts, loss,
KL). Both include compressing the weights. After a warm-up of both on one batch, the two sweeps
alternate `--repeats` times; the ratio of their medians is reported (target ≥ 3).
"""

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from benchmarks.common import (
    PROCESSING,
    calibrated_sae,
    hook_of,
    interleaved_medians,
    load_average,
    random_neox,
    random_tokens,
    rtn_copy,
)
from sweep.inputs.hooked import HookedLM
from sweep.passes.logprobs import batches, encode_codes, next_token_nll
from sweep.passes.measure import measure
from sweep.passes.reference import compute_reference

BITS, BATCH = (4, 5, 6, 7, 8), 8


def dense_codes(model, sae, hook: str, tokens: torch.Tensor) -> np.ndarray:
    """Codes for all tokens kept in memory, and the loss from the same forward passes."""
    codes, losses = [], []
    with torch.no_grad():
        for b in batches(tokens, BATCH):
            acts, logits = model.run(b, [hook])
            codes.append(encode_codes(sae, acts[hook], 1))
            losses.append(next_token_nll(logits, b).mean())
    return torch.cat(codes).numpy()


def naive(hf, sae, hook: str, tokens: torch.Tensor) -> None:
    """Per bit-width: FP and compressed dense codes, then pearsonr feature by feature."""
    for bits in BITS:
        x = dense_codes(HookedLM.wrap(hf, PROCESSING), sae, hook, tokens)
        y = dense_codes(rtn_copy(hf, bits), sae, hook, tokens)
        for j in range(x.shape[1]):
            if x[:, j].std() > 0 and y[:, j].std() > 0:
                stats.pearsonr(x[:, j], y[:, j])


def qfeat(hf, sae, hook: str, tokens: torch.Tensor) -> None:
    """One FP reference, then one streaming compressed pass per bit-width."""
    saes = {hook: sae}
    ref = compute_reference(HookedLM.wrap(hf, PROCESSING), saes, tokens, BATCH, 1, 128, False)
    for bits in BITS:
        result = measure(ref, {"q": rtn_copy(hf, bits)}, saes, tokens, BATCH, 1, False, 16)
        result.variants["q"].stats[hook].pearson()


def run(shape: str, d_sae: int, n_seq: int, repeats: int) -> dict:
    """Median seconds of both sweeps and naive ÷ qfeat."""
    hf = random_neox(shape)
    hook = hook_of(hf)
    sae = calibrated_sae("relu", HookedLM.wrap(hf, PROCESSING), hook, d_sae, 64)
    tokens = random_tokens(n_seq, hf.config.vocab_size)
    qfeat(hf, sae, hook, tokens[:BATCH])
    naive(hf, sae, hook, tokens[:BATCH])
    load_before = load_average()
    timed = interleaved_medians(
        {
            "qfeat": lambda: qfeat(hf, sae, hook, tokens),
            "naive": lambda: naive(hf, sae, hook, tokens),
        },
        repeats,
    )
    s = timed["cpu"]
    ratio = s["naive"] / s["qfeat"]
    print(f"shape={shape} d_sae={d_sae} tokens={tokens.numel()} bits={list(BITS)}")
    print(f"CPU: qfeat {s['qfeat']:.2f}s  naive {s['naive']:.2f}s  naive/qfeat {ratio:.2f}x")
    return {
        "shape": shape,
        "d_sae": d_sae,
        "tokens": tokens.numel(),
        "bits": list(BITS),
        "median_cpu_s": s,
        "median_wall_s": timed["wall"],
        "ratios": {"naive/qfeat": ratio},
        "load": [load_before, load_average()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="pythia-70m")
    parser.add_argument("--d-sae", type=int, default=32768)
    parser.add_argument("--n-seq", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    result = run(args.shape, args.d_sae, args.n_seq, args.repeats)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
