"""bitsandbytes: NF4 and FP4 (QLoRA's `load_in_4bit`) and LLM.int8 (`load_in_8bit`).

Every target nn.Linear is replaced by the module transformers' BitsAndBytesConfig would put
there (bnb.nn.Linear4bit / bnb.nn.Linear8bitLt, quantized by bitsandbytes when placed on the
device), so the measured forward pass is bitsandbytes' own, in eval mode as transformers loads
it (replacements take the mode of the layer they replace; bitsandbytes' kernels depend on it).
NF4/FP4 quantize blocks of `compression.group_size` weights (bitsandbytes' blocksize, default 64)
and compute in the model's dtype, except on a CPU with AVX512-BF16, where bitsandbytes 0.50.2
repacks them for its fused kernel, which computes in bfloat16. LLM.int8 keeps int8 weights with
one absmax scale per row and quantizes each input row to int8 at run time, on CPU as on CUDA,
multiplying outlier columns (|x| ≥ 6) unquantized (MatMul8bitLt); only in train mode on CPU does
it multiply by the dequantized weights instead (MatMul8bitFp). The model is then tagged as
transformers tags a model it loads quantized, so `save_pretrained` writes a bitsandbytes
checkpoint (`qfeat-export compression=nf4 …`).
"""

from torch import nn
from transformers import BitsAndBytesConfig
from transformers.quantizers.auto import AutoHfQuantizer

from sweep.compressors.registry import COMPRESSORS, divides, library, selected_linears
from sweep.config.compression import BnB4bitConfig, LLMInt8Config

INT8_THRESHOLD = 6.0  # transformers' llm_int8_threshold default: the outlier cut of LLM.int8


def replace_module(model: nn.Module, name: str, module: nn.Module) -> None:
    """Put `module` where `name` is in `model`, in the replaced module's train/eval mode.

    The mode matters to bitsandbytes: in eval mode LLM.int8 quantizes activations (on CPU too),
    in train mode it multiplies by dequantized weights instead.
    """
    parent, _, child = name.rpartition(".")
    owner = model.get_submodule(parent) if parent else model
    module.train(getattr(owner, child).training)
    setattr(owner, child, module)


def linear_4bit(layer: nn.Linear, quant_type: str, blocksize: int) -> nn.Module:
    """bitsandbytes' Linear4bit holding `layer`'s weight quantized (on the layer's device)."""
    bnb = library(quant_type, "bitsandbytes")
    weight = layer.weight
    module = bnb.nn.Linear4bit(
        layer.in_features,
        layer.out_features,
        bias=layer.bias is not None,
        compute_dtype=weight.dtype,
        compress_statistics=False,
        quant_type=quant_type,
        device="meta",
    )
    module.weight = bnb.nn.Params4bit(
        weight.detach().clone(),
        requires_grad=False,
        quant_type=quant_type,
        blocksize=blocksize,
        compress_statistics=False,
    )
    if layer.bias is not None:
        module.bias = nn.Parameter(layer.bias.detach().clone(), requires_grad=False)
    return module.to(weight.device)


def linear_int8(layer: nn.Linear) -> nn.Module:
    """bitsandbytes' Linear8bitLt (LLM.int8, inference: int8 weights) holding `layer`'s weight."""
    bnb = library("llm_int8", "bitsandbytes")
    weight = layer.weight
    module = bnb.nn.Linear8bitLt(
        layer.in_features,
        layer.out_features,
        bias=layer.bias is not None,
        has_fp16_weights=False,
        threshold=INT8_THRESHOLD,
        device="meta",
    )
    module.weight = bnb.nn.Int8Params(
        weight.detach().clone(), requires_grad=False, has_fp16_weights=False
    )
    if layer.bias is not None:
        module.bias = nn.Parameter(layer.bias.detach().clone(), requires_grad=False)
    return module.to(weight.device)


def tag_as_loaded(model: nn.Module, quant: BitsAndBytesConfig) -> None:
    """Give `model` the quantization config and quantizer that loading it with `quant` would,
    every plain nn.Linear left (the unembedding…) as a module to skip, so `save_pretrained`
    writes a bitsandbytes checkpoint that transformers reloads as is (`qfeat-export`)."""
    quant.llm_int8_skip_modules = [n for n, m in model.named_modules() if type(m) is nn.Linear]
    model.config.quantization_config = quant
    model.hf_quantizer = AutoHfQuantizer.from_config(quant, pre_quantized=False)


def apply_4bit(model: nn.Module, cfg: BnB4bitConfig, _calibration) -> None:
    """NF4 or FP4 (cfg.name is bitsandbytes' quant_type) of every target layer."""
    layers = selected_linears(model, cfg)
    blocksize = cfg.group_size or 64
    divides(layers, blocksize, lambda layer: layer.weight.numel())
    dtype = layers[0][1].weight.dtype
    for name, layer in layers:
        replace_module(model, name, linear_4bit(layer, cfg.name, blocksize))
    tag_as_loaded(
        model,
        BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type=cfg.name, bnb_4bit_compute_dtype=dtype
        ),
    )


def apply_int8(model: nn.Module, cfg: LLMInt8Config, _calibration) -> None:
    """LLM.int8 of every target layer."""
    for name, layer in selected_linears(model, cfg):
        replace_module(model, name, linear_int8(layer))
    tag_as_loaded(model, BitsAndBytesConfig(load_in_8bit=True, llm_int8_threshold=INT8_THRESHOLD))


COMPRESSORS.register("nf4")(apply_4bit)
COMPRESSORS.register("fp4")(apply_4bit)
COMPRESSORS.register("llm_int8")(apply_int8)
