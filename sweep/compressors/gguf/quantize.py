"""A GGUF quantized by llama.cpp's own quantizer (llama_model_quantize, as llama-quantize).

The type of every tensor is llama.cpp's choice for the file type (llama-quant.cpp): the
Q*_K_M/S/L mixes give some layers more bits, and a tensor whose rows the type's block does not
divide falls back to a legacy type (a 256-block K-quant on 128-wide rows: Q4_K -> Q5_0 and so
on). An importance matrix is passed as llama.cpp's array of {name, values, size}, the values
being llama-imatrix's mean squared activation per input column.
"""

import ctypes
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sweep.base.errors import QfeatError
from sweep.inputs.llamacpp import captured_log, last_error, llama_cpp

FALLBACK = re.compile(r"falling back to")


@dataclass(frozen=True)
class Quantized:
    """What llama.cpp reported while quantizing."""

    seconds: float
    n_fallback: int  # tensors that got a fallback type (their rows do not fit the type's blocks)


def file_type(name: str) -> int:
    """llama.cpp's llama_ftype of a type name (Q4_K_M, F32, ...)."""
    lc = llama_cpp()
    found = getattr(lc, f"LLAMA_FTYPE_MOSTLY_{name}", getattr(lc, f"LLAMA_FTYPE_ALL_{name}", None))
    if found is None:
        raise QfeatError(f"this llama.cpp has no file type {name}")
    return found


def imatrix_array(values: dict[str, np.ndarray]) -> tuple[ctypes.Array, list]:
    """llama.cpp's NULL-terminated imatrix array, and the buffers it points into (keep them)."""
    lc = llama_cpp()
    array = (lc.llama_model_imatrix_data * (len(values) + 1))()
    keep: list = []
    for entry, (name, column_values) in zip(array, sorted(values.items()), strict=False):
        data = np.ascontiguousarray(column_values, dtype=np.float32)
        keep += [data, name.encode()]
        entry.name = keep[-1]
        entry.data = data.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        entry.size = data.size
    array[len(values)].name = None
    return array, keep


def quantize(
    source: Path,
    out: Path,
    type_name: str,
    threads: int,
    imatrix: dict[str, np.ndarray] | None = None,
    fp_embeddings: bool = False,
) -> Quantized:
    """llama.cpp-quantize the F32 GGUF `source` to `type_name` at `out`."""
    lc = llama_cpp()
    params = lc.llama_model_quantize_default_params()
    params.nthread = threads
    params.ftype = file_type(type_name)
    if fp_embeddings:  # llama-quantize --token-embedding-type f32 --output-tensor-type f32
        params.token_embedding_type = params.output_tensor_type = lc.GGML_TYPE_F32
    keep = None
    if imatrix:
        array, keep = imatrix_array(imatrix)
        params.imatrix = ctypes.cast(array, ctypes.POINTER(lc.llama_model_imatrix_data))
    start = time.perf_counter()
    with captured_log() as lines:
        status = lc.llama_model_quantize(str(source).encode(), str(out).encode(), params)
    seconds = time.perf_counter() - start
    del keep
    if status != 0:
        raise QfeatError(
            f"llama.cpp cannot quantize to {type_name}: {last_error(lines, f'status {status}')}"
        )
    return Quantized(seconds, sum(bool(FALLBACK.search(line)) for line in lines))
