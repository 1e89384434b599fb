"""llm-compressor (vLLM's quantization library): GPTQ, AWQ, SmoothQuant W8A8, FP8, SparseGPT, Wanda.

Each method is llm-compressor's own modifier recipe run by its `oneshot` on the calibration
slice (disjoint from the measured tokens), over the target layers only (the unembedding and any
non-target layer are ignored). oneshot leaves the model fake-quantized in memory: compressed-
tensors wraps each target's forward to quantize its weight (and, for w8a8 and fp8, its input
activations, dynamically per token) exactly as `save_pretrained(save_compressed=True)` then
vLLM would, so the measured pass runs the quantization as deployed.
"""

import logging
from contextlib import contextmanager

import torch
from torch import nn
from transformers import AutoTokenizer

from sweep.base.errors import QfeatError
from sweep.compressors.registry import COMPRESSORS, library, selected_linears
from sweep.config.compression import (
    KINDS,
    METHODS,
    CalibratedConfig,
    MixedConfig,
    expand_targets,
)

SMOOTHQUANT_STRENGTH = 0.8  # llm-compressor's W8A8 examples
# GPT-NeoX's norm -> consuming layer pairs, by the consumer's module kind (llm-compressor knows
# Llama, Gemma, … itself).
NEOX_MAPPINGS = {
    "attn_qkv": ("input_layernorm", "attention.query_key_value"),
    "mlp_in": ("post_attention_layernorm", "mlp.dense_h_to_4h"),
}
SMOOTHING = ("awq", "w8a8")  # methods that rescale each norm into the layers it feeds


def weight_args(cfg: CalibratedConfig):
    """compressed-tensors' symmetric integer weight quantization, per group or per channel."""
    ct = library(cfg.name, "compressed_tensors.quantization")
    strategy = "group" if cfg.group_size else "channel"
    return ct.QuantizationArgs(
        num_bits=cfg.bits, type="int", symmetric=True, strategy=strategy, group_size=cfg.group_size
    )


def neox_mappings(model: nn.Module, cfg: CalibratedConfig) -> list[tuple[str, str]] | None:
    """(norm, layer) regex pairs for GPT-NeoX, whose layout llm-compressor does not know: the
    norms feeding the selected kinds of the selected blocks, so no other block is rescaled."""
    partial = cfg.blocks is not None or expand_targets(list(cfg.targets)) != KINDS
    if model.config.model_type != "gpt_neox":
        if partial and cfg.name in SMOOTHING:
            raise QfeatError(
                f"compression={cfg.name} with a partial selection (targets, blocks) needs "
                "smoothing mappings limited to it; qfeat builds them for GPT-NeoX only "
                f"(model_type {model.config.model_type})"
            )
        return None
    block = "" if cfg.blocks is None else rf"layers\.({'|'.join(map(str, sorted(cfg.blocks)))})\."
    kinds = expand_targets(list(cfg.targets))
    return [
        (f"re:.*{block}{norm}$", f"re:.*{block}{layer}$")
        for kind, (norm, layer) in NEOX_MAPPINGS.items()
        if kind in kinds
    ]


MODIFIERS = {  # llm-compressor module of each modifier class used
    "GPTQModifier": "llmcompressor.modifiers.quantization",
    "QuantizationModifier": "llmcompressor.modifiers.quantization",
    "AWQModifier": "llmcompressor.modifiers.awq",
    "AWQMapping": "llmcompressor.modifiers.awq",
    "SmoothQuantModifier": "llmcompressor.modifiers.smoothquant",
    "WandaPruningModifier": "llmcompressor.modifiers.pruning",
    "SparseGPTModifier": "llmcompressor.modifiers.obcq",
}


def quantization_groups(model: nn.Module, parts: list[CalibratedConfig]) -> dict:
    """compressed-tensors' config groups: one scheme per part (its layers, its bits)."""
    scheme = library(parts[0].name, "compressed_tensors.quantization").QuantizationScheme
    return {
        "qfeat" if len(parts) == 1 else f"qfeat_{i}_w{part.bits}": scheme(
            targets=[n for n, _ in selected_linears(model, part)], weights=weight_args(part)
        )
        for i, part in enumerate(parts)
    }


def recipe(model: nn.Module, cfg: CalibratedConfig | MixedConfig) -> list:
    """llm-compressor's modifiers for the method `cfg` configures, over the target layers (a
    mixed config: one GPTQ pass with a scheme per part)."""
    parts = cfg.part_configs() if isinstance(cfg, MixedConfig) else [cfg]
    cfg = parts[0]
    name = cfg.name

    def mod(cls: str):
        return getattr(library(name, MODIFIERS[cls]), cls)

    targets = [n for part in parts for n, _ in selected_linears(model, part)]
    output = model.get_output_embeddings()
    ignore = ["lm_head", *(n for n, m in model.named_modules() if m is output)]
    mappings = neox_mappings(model, cfg) if name in SMOOTHING else None
    if name in ("gptq", "awq"):
        groups = quantization_groups(model, parts)
        if name == "gptq":
            return [mod("GPTQModifier")(config_groups=groups, ignore=ignore)]
        pairs = None if mappings is None else [mod("AWQMapping")(n, [x]) for n, x in mappings]
        return [mod("AWQModifier")(config_groups=groups, ignore=ignore, mappings=pairs)]
    if name == "w8a8":
        pairs = None if mappings is None else [[[x], n] for n, x in mappings]
        return [
            mod("SmoothQuantModifier")(smoothing_strength=SMOOTHQUANT_STRENGTH, mappings=pairs),
            mod("GPTQModifier")(scheme="W8A8", targets=targets, ignore=ignore),
        ]
    if name == "fp8":
        return [mod("QuantizationModifier")(scheme="FP8_DYNAMIC", targets=targets, ignore=ignore)]
    pruner = mod("WandaPruningModifier" if name == "wanda" else "SparseGPTModifier")
    return [pruner(sparsity=cfg.sparsity, mask_structure="0:0", targets=targets, ignore=ignore)]


@contextmanager
def quiet_cpu_calibration():
    """llm-compressor without its INFO logs, and without pinning memory when no accelerator.

    AWQ pins its cached activations for faster host-to-device copies; pin_memory() fails on a
    machine without one, and pinning changes no value.
    """
    from loguru import logger

    cache = library("awq", "llmcompressor.pipelines.cache").IntermediatesCache
    pin = cache.pin_memory
    if not torch.accelerator.is_available():
        cache.pin_memory = lambda self, *args, **kwargs: None
    logger.disable("llmcompressor")
    logger.disable("compressed_tensors")
    fx_log = logging.getLogger("torch.fx._symbolic_trace")  # a deprecation note per trace
    level = fx_log.level
    fx_log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        fx_log.setLevel(level)
        cache.pin_memory = pin
        logger.enable("llmcompressor")
        logger.enable("compressed_tensors")


def calibration_set(tokens: torch.Tensor):
    """The calibration token slice as the datasets.Dataset oneshot takes."""
    datasets = library("gptq", "datasets")
    ids = tokens.tolist()
    return datasets.Dataset.from_dict(
        {"input_ids": ids, "attention_mask": [[1] * len(row) for row in ids]}
    )


def apply_oneshot(
    model: nn.Module, cfg: CalibratedConfig | MixedConfig, calibration: torch.Tensor
) -> None:
    """llm-compressor's oneshot with the method's recipe on the calibration slice, in place."""
    try:
        processor = AutoTokenizer.from_pretrained(model.name_or_path)
    except (OSError, ValueError) as err:
        raise QfeatError(
            f"compression={cfg.name}: llm-compressor needs the model's tokenizer next to it "
            f"({model.name_or_path!r}): {err}"
        ) from err
    oneshot = library(cfg.name, "llmcompressor").oneshot
    with quiet_cpu_calibration():
        oneshot(
            model=model,
            dataset=calibration_set(calibration),
            recipe=recipe(model, cfg),
            processor=processor,
            num_calibration_samples=len(calibration),
            max_seq_length=calibration.shape[1],
            pipeline="sequential",
            # The slice is already a seeded draw: in its own order, a job (and its export)
            # does not depend on the global random state (llm-compressor shuffles by default).
            shuffle_calibration_samples=False,
        )


for _name in METHODS.names():
    if issubclass(METHODS.get(_name), CalibratedConfig):
        COMPRESSORS.register(_name)(apply_oneshot)
