"""llama.cpp's own forward read like an HF model at the SAEs' hooks: the deployed variant.

`DeployedLM` answers what the measurement pass asks of `HookedLM` (run → residual at the hooks
and logits; called → logits), from llama.cpp decoding a GGUF file: the residual stream after
block L is llama.cpp's graph tensor `l_out-L` (before block L, `l_out-(L-1)`; before block 0,
the token embedding `embd`), centred like HookedLM's when the SAE expects it. Sequences are
decoded one at a time, each from position 0.
"""

from pathlib import Path

import numpy as np
import torch

from sweep.base.hooks import parse_hook
from sweep.inputs.llamacpp import LlamaCpp, residual_name

EMBEDDING = "embd"


def graph_name(hook: str, n_layers: int) -> str:
    """llama.cpp's graph tensor holding the residual stream at a TransformerLens hook."""
    layer, where = parse_hook(hook, n_layers)
    if where == "post":
        return residual_name(layer)
    return residual_name(layer - 1) if layer else EMBEDDING


class DeployedLM:
    """A GGUF file run by llama.cpp on the CPU, with the residual reads of `hooks`."""

    device = torch.device("cpu")

    def __init__(
        self, path: Path, hooks: list[str], n_layers: int, n_ctx: int, centre: bool, threads: int
    ) -> None:
        self.names = {hook: graph_name(hook, n_layers) for hook in hooks}
        self.centre = centre
        self.runtime = LlamaCpp(path, n_ctx, threads, capture=tuple(self.names.values()))
        self.d_vocab = self.runtime.n_vocab

    def run(
        self, tokens: torch.Tensor, hooks: list[str]
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Logits [batch, pos, vocab] and the residual stream [batch, pos, d_model] at `hooks`."""
        acts: dict[str, list[np.ndarray]] = {hook: [] for hook in hooks}
        logits = []
        for row in tokens.cpu().numpy():
            logits.append(self.runtime.logits(row))
            for hook in hooks:
                acts[hook].append(self.runtime.captured[self.names[hook]].reshape(len(row), -1))
        out = {hook: torch.from_numpy(np.stack(rows)) for hook, rows in acts.items()}
        if self.centre:
            out = {hook: x - x.mean(-1, keepdim=True) for hook, x in out.items()}
        return out, torch.from_numpy(np.stack(logits))

    def __call__(self, tokens: torch.Tensor, logits_to_keep: int = 0) -> torch.Tensor:
        """Logits of `tokens` [batch, pos]: of the last `logits_to_keep` positions (0: all)."""
        rows = [self.runtime.logits(row) for row in tokens.cpu().numpy()]
        return torch.from_numpy(np.stack(rows))[:, -logits_to_keep:]

    def close(self) -> None:
        """Free llama.cpp's model and context."""
        self.runtime.close()
