"""Train the `tiny` GPT-NeoX causal LM from scratch on the train token stream (seeded, CPU)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

log = logging.getLogger(__name__)


@dataclass
class LMSettings:
    """Architecture and optimisation settings of the `tiny` LM."""

    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    d_mlp: int = 512
    context_size: int = 128
    dropout: float = 0.0  # as Pythia
    steps: int = 2000
    batch_size: int = 32
    lr: float = 3e-3
    warmup_steps: int = 100
    weight_decay: float = 0.1
    seed: int = 0


def make_config(vocab_size: int, s: LMSettings, bos_id: int = 0) -> GPTNeoXConfig:
    """Return a Pythia-like GPTNeoXConfig (rotary, parallel residual, untied unembedding)."""
    return GPTNeoXConfig(
        vocab_size=vocab_size,
        hidden_size=s.d_model,
        num_hidden_layers=s.n_layers,
        num_attention_heads=s.n_heads,
        intermediate_size=s.d_mlp,
        max_position_embeddings=s.context_size,
        hidden_dropout=s.dropout,
        attention_dropout=s.dropout,
        bos_token_id=bos_id,
        eos_token_id=bos_id,
        pad_token_id=bos_id,
        tie_word_embeddings=False,
        use_parallel_residual=True,
    )


def sample_batch(
    stream: torch.Tensor, batch_size: int, context_size: int, bos_id: int, gen: torch.Generator
) -> torch.Tensor:
    """Random windows of the token stream, each prefixed with BOS: [batch, context_size]."""
    n = context_size - 1
    starts = torch.randint(0, stream.numel() - n, (batch_size,), generator=gen)
    windows = torch.stack([stream[s : s + n] for s in starts.tolist()])
    bos = torch.full((batch_size, 1), bos_id, dtype=torch.long)
    return torch.cat([bos, windows], dim=1)


def lr_at(step: int, s: LMSettings) -> float:
    """Linear warm-up then cosine decay to 10% of the peak learning rate."""
    if step < s.warmup_steps:
        return s.lr * (step + 1) / s.warmup_steps
    frac = (step - s.warmup_steps) / max(1, s.steps - s.warmup_steps)
    return s.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))


def train_lm(
    stream: torch.Tensor, vocab_size: int, s: LMSettings, bos_id: int = 0
) -> GPTNeoXForCausalLM:
    """Train a fresh LM on `stream` (1-D token ids) with AdamW; BOS targets are never scored."""
    torch.manual_seed(s.seed)
    model = GPTNeoXForCausalLM(make_config(vocab_size, s, bos_id))
    log.info("LM: %d parameters", sum(p.numel() for p in model.parameters()))
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": s.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=s.lr,
        betas=(0.9, 0.95),
    )
    gen = torch.Generator().manual_seed(s.seed)
    model.train()
    pbar = tqdm(range(s.steps), desc="Training LM", mininterval=2.0)
    for step in pbar:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, s)
        batch = sample_batch(stream, s.batch_size, s.context_size, bos_id, gen)
        logits = model(input_ids=batch).logits
        loss = torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, vocab_size), batch[:, 1:].reshape(-1)
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 20 == 0 or step == s.steps - 1:
            pbar.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()
    return model
