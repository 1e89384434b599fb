"""Shared set-up for the benchmarks: random-weight models of real shapes, random SAEs, timers."""

import time
from collections.abc import Callable

import torch
from sae_lens import StandardSAE, StandardSAEConfig
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

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


def random_neox(shape: str, n_ctx: int = 128, seed: int = 0) -> GPTNeoXForCausalLM:
    """A GPT-NeoX causal LM of a known shape with random weights, in eval mode."""
    torch.manual_seed(seed)
    cfg = GPTNeoXConfig(**SHAPES[shape], max_position_embeddings=n_ctx)
    return GPTNeoXForCausalLM(cfg).eval()


def random_sae(d_in: int, d_sae: int, hook: str, seed: int = 0) -> StandardSAE:
    """A ReLU SAE with random weights and a negative bias, so codes are sparse like real ones."""
    torch.manual_seed(seed)
    cfg = StandardSAEConfig(d_in=d_in, d_sae=d_sae)
    cfg.metadata.hook_name = hook
    sae = StandardSAE(cfg)
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(d_in, d_sae) / d_in**0.5)
        sae.b_enc.fill_(-2.2)  # roughly 1-2% of features fire per token
        sae.W_dec.copy_(torch.randn(d_sae, d_in) / d_sae**0.5)
    return sae.eval()


def best_of(fn: Callable[[], object], repeats: int = 3) -> float:
    """Minimum wall time of `fn` over `repeats` runs (seconds): the least-disturbed run."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)
