"""A 5-bit-width sweep with qfeat ÷ the naive way, on the same model, SAE and tokens.

python -m benchmarks.sweep_vs_naive [--shape pythia-70m] [--d-sae 32768] [--n-seq 16]

Naive: for every bit-width, run FP and compressed models, keep dense codes for all tokens and
compute each feature's correlation after the fact (scipy.stats.pearsonr per feature: what a
notebook would do), with the loss from the same forward passes. qfeat: one cached FP
reference, then per bit-width one compressed pass with streaming statistics. Both include
compressing the weights; the ratio is measured in one run.
"""

import argparse
import copy
import time

import numpy as np
import torch
from omegaconf import OmegaConf
from scipy import stats

from benchmarks.common import random_neox, random_sae
from benchmarks.overhead import PROCESSING
from sweep.compressors import compress_model
from sweep.hooked import HookedLM
from sweep.measure import (
    batches,
    compute_reference,
    encode_codes,
    hooked_forward,
    measure,
    next_token_nll,
)
from sweep.schema import CompressionConfig

RTN = OmegaConf.structured(CompressionConfig(name="rtn"))


def compressed_model(hf, path: str, bits: int):
    q = copy.deepcopy(hf)
    compress_model(q, RTN, bits)
    return HookedLM.wrap(q, PROCESSING)


def dense_codes(model, sae, hook: str, tokens: torch.Tensor, batch: int) -> np.ndarray:
    """Codes for all tokens kept in memory, and the loss from the same forward passes."""
    codes, losses = [], []
    with torch.no_grad():
        for b in batches(tokens, batch):
            acts, logits = hooked_forward(model, b, [hook])
            codes.append(encode_codes(sae, acts[hook], 1))
            losses.append(next_token_nll(logits, b).mean())
    return torch.cat(codes).numpy()


def naive(hf, path, sae, hook, tokens, bits_list, batch) -> None:
    for bits in bits_list:
        fp = HookedLM.wrap(hf, PROCESSING)
        x = dense_codes(fp, sae, hook, tokens, batch)
        y = dense_codes(compressed_model(hf, path, bits), sae, hook, tokens, batch)
        for j in range(x.shape[1]):
            if x[:, j].std() > 0 and y[:, j].std() > 0:
                stats.pearsonr(x[:, j], y[:, j])


def qfeat(hf, path, sae, hook, tokens, bits_list, batch) -> None:
    fp = HookedLM.wrap(hf, PROCESSING)
    ref = compute_reference(fp, {hook: sae}, tokens, batch, 1, 128, False)
    for bits in bits_list:
        q = compressed_model(hf, path, bits)
        measure(ref, {"q": q}, {hook: sae}, tokens, batch, 1, False).variants["q"].stats[
            hook
        ].pearson()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="pythia-70m")
    parser.add_argument("--d-sae", type=int, default=32768)
    parser.add_argument("--n-seq", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    hf = random_neox(args.shape)
    path = "/tmp/qfeat-bench-model"
    hf.save_pretrained(path)
    hook = f"blocks.{hf.config.num_hidden_layers // 2}.hook_resid_post"
    sae = random_sae(hf.config.hidden_size, args.d_sae, hook)
    tokens = torch.randint(1, hf.config.vocab_size, (args.n_seq, 128))
    bits_list = [4, 5, 6, 7, 8]
    timings = {}
    for name, fn in (("qfeat", qfeat), ("naive", naive)):
        start = time.perf_counter()
        fn(hf, path, sae, hook, tokens, bits_list, args.batch_size)
        timings[name] = time.perf_counter() - start
    print(f"shape={args.shape} d_sae={args.d_sae} tokens={tokens.numel()} bits={bits_list}")
    print(f"qfeat sweep: {timings['qfeat']:.2f}s   naive sweep: {timings['naive']:.2f}s")
    print(f"naive / qfeat: {timings['naive'] / timings['qfeat']:.2f}x")


if __name__ == "__main__":
    main()
