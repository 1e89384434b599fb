"""Read an HF causal LM at TransformerLens hook names with forward hooks on its own modules.

The measured forward pass is the HF model's own forward, so a compressed model runs exactly as
deployed (bitsandbytes, torchao or compressed-tensors modules, activation quantization included).
An SAE trained on TransformerLens activations reads the residual stream TransformerLens computes;
of TransformerLens' weight processing only `center_writing_weights` changes the residual stream
(it removes its mean over d_model, for LayerNorm models); folding LayerNorm or value biases and
centring the unembedding leave activations and log-probabilities unchanged. That transform is
applied here, so the activations equal TransformerLens' (tests/test_hooked.py checks it).
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn
from transformer_lens.utilities.architectures import POST_NORM_ARCHITECTURES

from sweep.base.errors import QfeatError
from sweep.base.hooks import parse_hook


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The model's list of transformer blocks (the ModuleList with one entry per layer)."""
    n_layers = model.config.num_hidden_layers
    for module in model.modules():
        if isinstance(module, nn.ModuleList) and len(module) == n_layers:
            return module
    raise QfeatError(f"cannot find the {n_layers} decoder layers of {type(model).__name__}")


def centres_residual(model: nn.Module, processing: dict) -> bool:
    """Whether TransformerLens' processing removes the residual mean for this model.

    TransformerLens centres writing weights only for LayerNorm models that are not post-norm.
    """
    if not processing.get("center_writing_weights", False):
        return False
    if set(getattr(model.config, "architectures", None) or ()) & POST_NORM_ARCHITECTURES:
        return False
    return any(isinstance(m, nn.LayerNorm) for m in model.modules())


def _hidden(value) -> torch.Tensor:
    """The hidden states of a decoder layer's input or output (a tensor or a tuple's first)."""
    return value[0] if isinstance(value, tuple | list) else value


@dataclass
class HookedLM:
    """An HF causal LM with the residual-stream reads an SAE needs; call it for logits."""

    model: nn.Module
    centre: bool

    @classmethod
    def wrap(cls, model: nn.Module, processing: dict) -> "HookedLM":
        """Wrap `model` (left as it is) for the SAEs' TransformerLens processing."""
        return cls(model=model.eval(), centre=centres_residual(model, processing))

    @property
    def device(self) -> torch.device:
        """Where the model's inputs go (its embedding's device)."""
        return self.model.get_input_embeddings().weight.device

    @property
    def n_layers(self) -> int:
        """Number of decoder layers."""
        return self.model.config.num_hidden_layers

    @property
    def d_model(self) -> int:
        """Width of the residual stream."""
        return self.model.config.hidden_size

    @property
    def d_vocab(self) -> int:
        """Number of logits per position."""
        return self.model.config.vocab_size

    def check_hook(self, hook: str) -> None:
        """Fail in one line unless `hook` is a residual-stream hook of this model."""
        parse_hook(hook, self.n_layers)

    def _keep(self, acts: dict, hook: str, value) -> None:
        hidden = _hidden(value).detach()
        acts[hook] = hidden - hidden.mean(-1, keepdim=True) if self.centre else hidden

    def _keep_output(self, acts: dict, hook: str, _module, _args, output) -> None:
        self._keep(acts, hook, output)

    def _keep_input(self, acts: dict, hook: str, _module, args: tuple, kwargs: dict) -> None:
        self._keep(acts, hook, args[0] if args else kwargs["hidden_states"])

    def run(
        self, tokens: torch.Tensor, hooks: list[str]
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Logits and the residual stream at `hooks` from one forward pass of the HF model."""
        layers = decoder_layers(self.model)
        acts: dict[str, torch.Tensor] = {}
        handles = []
        for hook in hooks:
            layer, where = parse_hook(hook, self.n_layers)
            if where == "post":
                keep = partial(self._keep_output, acts, hook)
                handles.append(layers[layer].register_forward_hook(keep))
            else:
                keep = partial(self._keep_input, acts, hook)
                handles.append(layers[layer].register_forward_pre_hook(keep, with_kwargs=True))
        try:
            logits = self.model(tokens.to(self.device), use_cache=False).logits
        finally:
            for handle in handles:
                handle.remove()
        return acts, logits

    @torch.no_grad()
    def __call__(self, tokens: torch.Tensor, logits_to_keep: int = 0) -> torch.Tensor:
        """Logits of `tokens` [batch, pos]: of the last `logits_to_keep` positions (0: all)."""
        return self.model(
            tokens.to(self.device), use_cache=False, logits_to_keep=logits_to_keep
        ).logits


@contextmanager
def edited_residual(
    lm: HookedLM, hook: str, edit: Callable[[torch.Tensor], torch.Tensor]
) -> Iterator[None]:
    """Within the block, the residual stream at `hook` is replaced by `edit(residual)`."""
    layer, where = parse_hook(hook, lm.n_layers)
    block = decoder_layers(lm.model)[layer]

    def post(_module, _args, output):
        if isinstance(output, tuple):
            return (edit(output[0]), *output[1:])
        return edit(output)

    def pre(_module, args, kwargs):
        if args:
            return (edit(args[0]), *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": edit(kwargs["hidden_states"])}

    handle = (
        block.register_forward_hook(post)
        if where == "post"
        else block.register_forward_pre_hook(pre, with_kwargs=True)
    )
    try:
        yield
    finally:
        handle.remove()
