"""Shared set-up for the benchmarks: random-weight models of real shapes, SAEs of each family
calibrated to a realistic sparsity, RTN copies, and interleaved median timers."""

import copy
import math
import os
import statistics
import time
from collections.abc import Callable

import torch
from sae_lens import (
    JumpReLUSAE,
    JumpReLUSAEConfig,
    StandardSAE,
    StandardSAEConfig,
    TopKSAE,
    TopKSAEConfig,
)
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

from sweep.compressors import compress_model
from sweep.config.compression import RTNConfig
from sweep.inputs.hooked import HookedLM

SHAPES = {
    # Pythia-70M's architecture (random weights are fine for timing).
    "pythia-70m": dict(
        hidden_size=512,
        num_hidden_layers=6,
        num_attention_heads=8,
        intermediate_size=2048,
        vocab_size=50304,
    ),
    # The embedded tiny model's shape.
    "tiny": dict(
        hidden_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=512,
        vocab_size=2048,
    ),
}
# The benchmarks read the raw residual stream (no TransformerLens processing to imitate).
PROCESSING = {"center_writing_weights": False}
BOS = 0
SEQ_LEN = 128


def random_neox(shape: str, n_ctx: int = SEQ_LEN, seed: int = 0) -> GPTNeoXForCausalLM:
    """A GPT-NeoX causal LM of a known shape with random weights, in eval mode."""
    torch.manual_seed(seed)
    cfg = GPTNeoXConfig(**SHAPES[shape], max_position_embeddings=n_ctx)
    return GPTNeoXForCausalLM(cfg).eval()


def rtn_copy(hf: GPTNeoXForCausalLM, bits: int) -> HookedLM:
    """An RTN-compressed copy of `hf` (per-channel, symmetric), wrapped for measurement."""
    q = copy.deepcopy(hf)
    compress_model(q, RTNConfig(bits=bits))
    return HookedLM.wrap(q, PROCESSING)


def random_tokens(n_seq: int, vocab: int, seed: int = 0) -> torch.Tensor:
    """BOS-prefixed random token ids [n_seq, SEQ_LEN], like the measured token sets."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(1, vocab, (n_seq, SEQ_LEN), generator=g)
    tokens[:, 0] = BOS
    return tokens


def hook_of(hf: GPTNeoXForCausalLM) -> str:
    """The middle layer's residual-stream hook."""
    return f"blocks.{hf.config.num_hidden_layers // 2}.hook_resid_post"


@torch.no_grad()
def calibrated_sae(family: str, model: HookedLM, hook: str, d_sae: int, l0: int, seed: int = 0):
    """A random SAE of `family` (relu, topk, jumprelu) whose codes on this model's activations
    are about as sparse as real SAEs': mean L0 ≈ `l0`, with feature frequencies spread
    log-uniformly over two decades (rare and common features), so sparse work is realistic."""
    torch.manual_seed(seed)
    d_in = model.d_model
    sample = random_tokens(8, model.d_vocab, seed=seed + 1)
    x = model.run(sample, [hook])[0][hook][:, 1:].reshape(-1, d_in).float()
    w_enc = torch.randn(d_in, d_sae) / d_in**0.5
    # pre-activation moments per feature, 65,536 features at a time (a 1M-wide SAE's
    # [tokens, d_sae] pre-activations would take 4 GB)
    moments = [(p.mean(0), p.std(0)) for p in (x @ w for w in w_enc.split(1 << 16, dim=1))]
    mean, std = (torch.cat(m) for m in zip(*moments, strict=True))
    w_enc /= std
    spread = torch.exp(torch.rand(d_sae) * math.log(100.0))  # log-uniform on [1, 100]
    freq = (spread * l0 / spread.sum()).clamp(max=0.5)
    cut = torch.distributions.Normal(0.0, 1.0).icdf(1 - freq) + mean / std
    cls, config = {
        "relu": (StandardSAE, StandardSAEConfig(d_in=d_in, d_sae=d_sae)),
        "topk": (TopKSAE, TopKSAEConfig(d_in=d_in, d_sae=d_sae, k=l0)),
        "jumprelu": (JumpReLUSAE, JumpReLUSAEConfig(d_in=d_in, d_sae=d_sae)),
    }[family]
    config.metadata.hook_name = hook
    sae = cls(config)
    sae.W_enc.copy_(w_enc)
    sae.b_dec.zero_()
    sae.W_dec.copy_(torch.randn(d_sae, d_in) / d_sae**0.5)
    if family == "jumprelu":
        sae.b_enc.zero_()
        sae.threshold.copy_(cut)
    else:
        sae.b_enc.copy_(-cut)
    return sae.eval()


def interleaved_medians(
    fns: dict[str, Callable[[], object]], repeats: int
) -> dict[str, dict[str, float]]:
    """Median CPU seconds (this process, all threads) and wall seconds of each function: one
    warm-up each, then `repeats` rounds, each round running every function once, so slow phases
    of a shared machine hit all alike. CPU time is what ratios are taken of: on a machine shared
    with other work it counts this process's work, not the time it waited for a core."""
    for fn in fns.values():
        fn()
    cpu: dict[str, list[float]] = {name: [] for name in fns}
    wall: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start_cpu, start = time.process_time(), time.perf_counter()
            fn()
            cpu[name].append(time.process_time() - start_cpu)
            wall[name].append(time.perf_counter() - start)
    return {
        "cpu": {name: statistics.median(ts) for name, ts in cpu.items()},
        "wall": {name: statistics.median(ts) for name, ts in wall.items()},
    }


def load_average() -> list[float]:
    """The machine's 1, 5 and 15 minute load averages, recorded beside every result."""
    return [round(v, 2) for v in os.getloadavg()]
