"""Train the `tiny` residual-stream SAE with SAE-Lens' own trainer from an activation iterator.

Uses `sae_lens.SAETrainer` (the loop the LLM runner uses) with a `StandardTrainingSAE`
(ReLU + L1, like the Pythia-70M `res-sm` SAEs) and `SAETrainerConfig`; the data provider is
a seeded, reshuffling iterator over precomputed HF activations (`hidden_states[L + 1]`,
i.e. TransformerLens `blocks.L.hook_resid_post` with no weight processing), BOS excluded.
Saved with `TrainingSAE.save_inference_model` -> `cfg.json` + `sae_weights.safetensors`,
loadable by `sae_lens.SAE.load_from_disk`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from sae_lens import LoggingConfig, SAETrainer, StandardTrainingSAE, StandardTrainingSAEConfig
from sae_lens.config import SAETrainerConfig
from sae_lens.saes.sae import SAEMetadata

log = logging.getLogger(__name__)

TL_KWARGS = {"fold_ln": False, "center_writing_weights": False, "center_unembed": False}


@dataclass
class SAESettings:
    """Width, sparsity penalty and optimisation settings of the `tiny` SAE."""

    layer: int = 2
    expansion: int = 8
    l1_coefficient: float = 1.5
    lr: float = 2e-3
    steps: int = 2500
    batch_size: int = 1024
    l1_warmup_frac: float = 0.05
    lr_decay_frac: float = 0.2
    seed: int = 0


def hook_name(layer: int) -> str:
    """TransformerLens hook name of the residual stream after block `layer`."""
    return f"blocks.{layer}.hook_resid_post"


class ActivationIterator(Iterator[torch.Tensor]):
    """Endless batches of rows of `acts`, reshuffled each epoch by a seeded generator."""

    def __init__(self, acts: torch.Tensor, batch_size: int, seed: int) -> None:
        """Keep the activations [N, d] and a private generator (no global RNG use)."""
        self.acts, self.batch_size = acts, batch_size
        self.gen = torch.Generator().manual_seed(seed)
        self.order = torch.randperm(acts.shape[0], generator=self.gen)
        self.pos = 0

    def __next__(self) -> torch.Tensor:
        """Return the next [batch_size, d] batch, starting a new permutation when exhausted."""
        if self.pos + self.batch_size > self.order.numel():
            self.order = torch.randperm(self.acts.shape[0], generator=self.gen)
            self.pos = 0
        idx = self.order[self.pos : self.pos + self.batch_size]
        self.pos += self.batch_size
        return self.acts[idx]


def train_sae(
    acts: torch.Tensor, s: SAESettings, context_size: int, model_name: str = "tiny"
) -> StandardTrainingSAE:
    """Train a standard ReLU SAE on activations [N, d_in] with `SAETrainer.fit`."""
    torch.manual_seed(s.seed)
    d_in = acts.shape[1]
    metadata = SAEMetadata(
        model_name=model_name,
        hook_name=hook_name(s.layer),
        hook_head_index=None,
        context_size=context_size,
        prepend_bos=True,
        seqpos_slice=(1, None),
        model_from_pretrained_kwargs=dict(TL_KWARGS),
        dataset_path="pydoc_data.topics (train split, see sweep/tiny/corpus.py)",
        exclude_special_tokens=False,
    )
    cfg = StandardTrainingSAEConfig(
        d_in=d_in,
        d_sae=s.expansion * d_in,
        l1_coefficient=s.l1_coefficient,
        l1_warm_up_steps=int(s.l1_warmup_frac * s.steps),
        normalize_activations="expected_average_only_in",
        apply_b_dec_to_input=True,
        dtype="float32",
        device="cpu",
        metadata=metadata,
    )
    sae = StandardTrainingSAE(cfg)
    trainer_cfg = SAETrainerConfig(
        total_training_samples=s.steps * s.batch_size,
        train_batch_size_samples=s.batch_size,
        lr=s.lr,
        lr_end=s.lr,
        lr_scheduler_name="constant",
        lr_warm_up_steps=0,
        lr_decay_steps=int(s.lr_decay_frac * s.steps),
        device="cpu",
        n_checkpoints=0,
        checkpoint_path=None,
        save_final_checkpoint=False,
        logger=LoggingConfig(log_to_wandb=False),
        n_batches_for_norm_estimate=min(100, max(1, acts.shape[0] // s.batch_size)),
    )
    data = ActivationIterator(acts, s.batch_size, s.seed)
    trainer = SAETrainer(cfg=trainer_cfg, sae=sae, data_provider=data)
    return trainer.fit()


def save_sae(sae: StandardTrainingSAE, path: Path) -> None:
    """Save in SAE-Lens' inference on-disk format (architecture `standard`), byte-stable.

    `save_inference_model` builds cfg.json from a set of field names, so its key order follows
    PYTHONHASHSEED; the file is rewritten with sorted keys so two builds are byte-identical.
    """
    _, cfg_path = sae.save_inference_model(str(path))
    cfg = json.loads(Path(cfg_path).read_text())
    Path(cfg_path).write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
