"""compression=gguf: llama.cpp's converter and quantizer, read back into the HF model.

The HF model is converted to an F32 GGUF by llama.cpp's own convert_hf_to_gguf.py (once per
process for the same weights), optionally an importance matrix is collected by llama.cpp on the
calibration slice, llama_model_quantize writes the file of the configured type with llama.cpp's
per-tensor policy, and gguf-py dequantizes every tensor of that file back into the HF model in
place: the measured model holds exactly the values llama.cpp holds. Everything the policy
quantizes is quantized, the token embedding and the unembedding included (unless
compression.fp_embeddings=true); 1-D norms and biases stay F32 as llama.cpp keeps them.
"""

import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from sweep.base.errors import QfeatError
from sweep.compressors.gguf.convert import source_gguf
from sweep.compressors.gguf.imatrix import importance_matrix
from sweep.compressors.gguf.quantize import quantize
from sweep.compressors.registry import COMPRESSORS
from sweep.config.compression import GGUFConfig
from sweep.inputs.gguf_file import (
    TensorInfo,
    architecture,
    bits_per_weight,
    load_into,
    metadata,
    reader,
    tensor_infos,
)
from sweep.inputs.llamacpp import threads_for

IMATRIX_KEY = "quantize.imatrix.file"  # what llama-quantize records of an importance matrix


@dataclass
class GGUFArtifact:
    """A quantized GGUF file and what it holds; the file lives as long as this object."""

    path: Path
    type: str
    imatrix: bool
    tensors: dict[str, TensorInfo]
    n_fallback: int | None = None  # None: not quantized here (an audited file)
    seconds: dict[str, float] = field(default_factory=dict)
    keep: tempfile.TemporaryDirectory | None = None

    @property
    def bits_per_weight(self) -> float:
        """Bits per weight of the file's 2-D weights (embedding and unembedding included)."""
        return bits_per_weight(self.tensors)

    @property
    def matrix_types(self) -> dict[str, int]:
        """How many 2-D weights of each ggml type the file holds."""
        return dict(Counter(t.ggml_type for t in self.tensors.values() if t.matrix))

    @property
    def n_quantized(self) -> int:
        """2-D weights stored in a type other than F32."""
        return sum(t.matrix and t.ggml_type != "F32" for t in self.tensors.values())


def quantize_model(
    model: nn.Module, cfg: GGUFConfig, calibration: torch.Tensor | None
) -> GGUFArtifact:
    """Convert, quantize and read `model` back in place; the GGUF file llama.cpp wrote."""
    architecture(model)  # one that qfeat reads back, before the converter runs
    if cfg.imatrix and calibration is None:
        raise QfeatError("compression.imatrix=true needs the calibration slice")
    threads = torch.get_num_threads()
    seconds = {}
    start = time.perf_counter()
    source = source_gguf(model)
    seconds["convert"] = time.perf_counter() - start
    imatrix = None
    if cfg.imatrix:
        start = time.perf_counter()
        imatrix = importance_matrix(source, calibration.cpu().numpy(), threads_for(model))
        seconds["imatrix"] = time.perf_counter() - start
    keep = tempfile.TemporaryDirectory(prefix="qfeat-gguf-")
    path = Path(keep.name) / f"model-{cfg.type}.gguf"
    report = quantize(source, path, cfg.type, threads, imatrix, cfg.fp_embeddings)
    seconds["quantize"] = report.seconds
    start = time.perf_counter()
    load_into(model, path)
    seconds["read_back"] = time.perf_counter() - start
    return GGUFArtifact(
        path, cfg.type, cfg.imatrix, tensor_infos(path), report.n_fallback, seconds, keep
    )


def read_artifact(path: Path) -> GGUFArtifact:
    """A GGUF file quantized elsewhere (an audit's candidate), as far as the file tells."""
    import gguf

    r = reader(path)
    file_type = metadata(r, "general.file_type")
    name = "F32" if file_type is None else gguf.LlamaFileType(file_type).name.split("_", 1)[1]
    return GGUFArtifact(path, name, metadata(r, IMATRIX_KEY) is not None, tensor_infos(path))


def apply(model: nn.Module, cfg: GGUFConfig, calibration: torch.Tensor | None) -> None:
    """The registry's form: the model ends up holding the GGUF's dequantized weights."""
    quantize_model(model, cfg, calibration)


COMPRESSORS.register("gguf")(apply)
