"""A GGUF file read back into the HF model it was converted from (gguf-py, no llama.cpp).

gguf-py's numpy dequantization gives the same float32 values as ggml's own C `to_float` for
every type qfeat runs (tests/unit/compressors/test_gguf.py checks it bit for bit). Tensors are
matched to the HF parameters by gguf-py's own tensor-name map for the architecture, so a tensor
the converter would not have written is an error. GGUF's [ne1, ne0] numpy order is nn.Linear's
[out, in]; the one layout change llama.cpp's converter makes for GPT-NeoX is the row order of
the fused QKV projection, [head, (q|k|v), head_dim] in HF and [(q|k|v), head, head_dim] in GGUF,
undone here. Only GPT-NeoX is read back (the embedded model and Pythia).
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sweep.base.errors import QfeatError
from sweep.config.compression import GGUF_ARCHITECTURES as ARCHITECTURES

QKV = ".attention.query_key_value."
# GGUF metadata (under the architecture's prefix) -> the HF config field it must equal.
SHAPE_KEYS = {
    "block_count": "num_hidden_layers",
    "embedding_length": "hidden_size",
    "feed_forward_length": "intermediate_size",
    "attention.head_count": "num_attention_heads",
}


def reader(path: Path):
    """gguf-py's reader of `path`, or one line saying the file is not a readable GGUF."""
    import gguf

    try:
        return gguf.GGUFReader(str(path))
    except (OSError, ValueError, AssertionError) as err:
        raise QfeatError(f"{path} is not a readable GGUF file: {err}") from err


def metadata(r, key: str):
    """A metadata value of the file (None when absent)."""
    f = r.fields.get(key)
    return None if f is None else f.contents()


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of a GGUF: its ggml type and storage."""

    ggml_type: str
    shape: tuple[int, ...]  # numpy order
    n_bytes: int

    @property
    def matrix(self) -> bool:
        """A 2-D weight (what a GGUF type quantizes; 1-D norms and biases stay F32)."""
        return len(self.shape) == 2


def tensor_infos(path: Path) -> dict[str, TensorInfo]:
    """Every tensor of the file by GGUF name."""
    return {
        t.name: TensorInfo(
            t.tensor_type.name, tuple(int(x) for x in reversed(t.shape)), int(t.n_bytes)
        )
        for t in reader(path).tensors
    }


def bits_per_weight(infos: dict[str, TensorInfo]) -> float:
    """Bits per weight over the file's 2-D weights (embedding and unembedding included)."""
    matrices = [t for t in infos.values() if t.matrix]
    return 8 * sum(t.n_bytes for t in matrices) / sum(int(np.prod(t.shape)) for t in matrices)


def architecture(model: nn.Module) -> str:
    """The GGUF architecture name of an HF model qfeat can read GGUF weights back into."""
    model_type = model.config.model_type
    if model_type not in ARCHITECTURES:
        raise QfeatError(
            f"qfeat reads GGUF weights back into {', '.join(ARCHITECTURES)} models; "
            f"this model is {model_type!r}"
        )
    return ARCHITECTURES[model_type]


def gguf_names(model: nn.Module) -> dict[str, str]:
    """HF parameter name -> GGUF tensor name, by gguf-py's map for the architecture."""
    import gguf

    arch = architecture(model)
    arch_id = next(k for k, v in gguf.MODEL_ARCH_NAMES.items() if v == arch)
    names = gguf.get_tensor_name_map(arch_id, model.config.num_hidden_layers)
    out = {}
    for name, _ in model.named_parameters():
        mapped = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if mapped is None:
            raise QfeatError(f"GGUF has no tensor name for the HF parameter {name}")
        out[name] = mapped
    return out


def qkv_to_hf(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's fused QKV rows [(q|k|v), head, head_dim] in HF's order."""
    rest = w.shape[1:]
    return w.reshape(3, n_head, -1, *rest).swapaxes(0, 1).reshape(w.shape)


def check_matches(path: Path, config, vocab: dict[str, int]) -> None:
    """One line unless the GGUF is the HF model's architecture, shapes and vocabulary (cheap:
    metadata only, before any weight is read)."""
    r = reader(path)
    arch = metadata(r, "general.architecture")
    want = ARCHITECTURES.get(config.model_type)
    if want is None or arch != want:
        raise QfeatError(
            f"{path} is a {arch!r} GGUF; the base model is {config.model_type!r} (qfeat reads "
            f"GGUF back into {', '.join(f'{v} ({k})' for k, v in ARCHITECTURES.items())})"
        )
    for key, attr in SHAPE_KEYS.items():
        value, expected = metadata(r, f"{arch}.{key}"), getattr(config, attr)
        if value != expected:
            raise QfeatError(f"{path} has {arch}.{key}={value}; the base model's {attr}={expected}")
    tokens = metadata(r, "tokenizer.ggml.tokens") or []
    by_id = {i: t for t, i in vocab.items()}
    padding = {i: f"[PAD{i}]" for i in range(len(tokens)) if i not in by_id}  # the converter's
    if len(tokens) != config.vocab_size or any(
        {**by_id, **padding}.get(i) != t for i, t in enumerate(tokens)
    ):
        raise QfeatError(
            f"{path} carries a vocabulary of {len(tokens)} tokens that is not the base "
            f"model's ({config.vocab_size} tokens, its tokenizer's strings)"
        )


def dequantized(path: Path) -> dict[str, tuple[np.ndarray, str]]:
    """GGUF tensor name -> (float32 values in numpy order, ggml type name), by gguf-py."""
    from gguf.quants import dequantize

    return {
        t.name: (
            np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32).reshape(
                tuple(int(x) for x in reversed(t.shape))
            ),
            t.tensor_type.name,
        )
        for t in reader(path).tensors
    }


@torch.no_grad()
def load_into(model: nn.Module, path: Path) -> dict[str, str]:
    """Overwrite every parameter of `model` in place with the GGUF's dequantized tensor (in the
    parameter's dtype and device); returns HF name -> ggml type. Every tensor of the file must
    be a parameter of the model and every parameter a tensor of the file."""
    names = gguf_names(model)
    tensors = dequantized(path)
    extra = sorted(set(tensors) - set(names.values()))
    missing = sorted(set(names.values()) - set(tensors))
    if extra or missing:
        raise QfeatError(
            f"{path} does not hold this model's tensors: extra {extra[:3]}, missing {missing[:3]}"
        )
    params = dict(model.named_parameters())
    types = {}
    for hf, name in names.items():
        values, types[hf] = tensors[name]
        if QKV in hf:
            values = qkv_to_hf(values, model.config.num_attention_heads)
        param = params[hf]
        if values.shape != tuple(param.shape):
            raise QfeatError(f"{path}: {name} is {values.shape}, {hf} is {tuple(param.shape)}")
        param.copy_(torch.from_numpy(np.array(values)).to(param.device, param.dtype))
    return types
