"""ggml tensors as llama.cpp's evaluation callback hands them over (ctypes, no compiled code).

llama-cpp-python binds llama.h but not ggml.h: the callback receives a bare `ggml_tensor *`.
The struct layout below is ggml.h's as vendored in llama-cpp-python 0.3.36; `check_layout`
compares its size with what the library itself reports (ggml_tensor_overhead() is the object
header plus sizeof(ggml_tensor)), so a drifted layout fails in one line instead of reading
garbage.
"""

import ctypes
from functools import cache
from pathlib import Path

import numpy as np

from sweep.base.errors import QfeatError

MAX_DIMS, MAX_SRC, MAX_OP_PARAMS, MAX_NAME = 4, 10, 64, 64
OBJECT_HEADER = 32  # sizeof(struct ggml_object)
TYPE_F32 = 0


class Tensor(ctypes.Structure):
    """struct ggml_tensor."""


Tensor._fields_ = [
    ("type", ctypes.c_int),
    ("buffer", ctypes.c_void_p),
    ("ne", ctypes.c_int64 * MAX_DIMS),
    ("nb", ctypes.c_size_t * MAX_DIMS),
    ("op", ctypes.c_int),
    ("op_params", ctypes.c_int32 * (MAX_OP_PARAMS // 4)),
    ("flags", ctypes.c_int32),
    ("src", ctypes.POINTER(Tensor) * MAX_SRC),
    ("view_src", ctypes.POINTER(Tensor)),
    ("view_offs", ctypes.c_size_t),
    ("data", ctypes.c_void_p),
    ("name", ctypes.c_char * MAX_NAME),
    ("extra", ctypes.c_void_p),
    ("padding", ctypes.c_char * 8),
]

TensorPtr = ctypes.POINTER(Tensor)


def library_dir() -> Path:
    """Where llama-cpp-python keeps llama.cpp's shared libraries."""
    import llama_cpp

    return Path(llama_cpp.__file__).parent / "lib"


@cache
def ggml_base() -> ctypes.CDLL:
    """libggml-base (types, tensor helpers, backend reads), with the signatures used here."""
    lib = ctypes.CDLL(str(library_dir() / "libggml-base.so"), mode=ctypes.RTLD_GLOBAL)
    lib.ggml_op_name.restype = ctypes.c_char_p
    lib.ggml_op_name.argtypes = [ctypes.c_int]
    lib.ggml_is_contiguous.restype = ctypes.c_bool
    lib.ggml_is_contiguous.argtypes = [TensorPtr]
    lib.ggml_backend_tensor_get.restype = None
    lib.ggml_backend_tensor_get.argtypes = [
        TensorPtr,
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_size_t,
    ]
    lib.ggml_tensor_overhead.restype = ctypes.c_size_t
    return lib


def check_layout() -> None:
    """Fail in one line when this struct no longer matches the installed ggml."""
    overhead = ggml_base().ggml_tensor_overhead()
    if overhead != OBJECT_HEADER + ctypes.sizeof(Tensor):
        raise QfeatError(
            f"the installed ggml's tensor struct ({overhead - OBJECT_HEADER} bytes) is not the "
            f"one qfeat reads ({ctypes.sizeof(Tensor)}): install llama-cpp-python==0.3.36"
        )


def name(t: Tensor) -> str:
    """The tensor's graph name (e.g. 'l_out-2', 'blk.0.attn_qkv.weight')."""
    return t.name.decode("utf-8", "replace")


def op(t: Tensor) -> str:
    """The operation that produced the tensor (e.g. 'MUL_MAT')."""
    return ggml_base().ggml_op_name(t.op).decode()


def to_numpy(ptr: TensorPtr) -> np.ndarray:
    """A copy of a contiguous F32 tensor, shape [ne3, ne2, ne1, ne0] (numpy order)."""
    t = ptr.contents
    if t.type != TYPE_F32 or not ggml_base().ggml_is_contiguous(ptr):
        raise QfeatError(f"ggml tensor {name(t)} is not a contiguous F32 tensor")
    shape = tuple(int(t.ne[i]) for i in reversed(range(MAX_DIMS)))
    out = np.empty(shape, dtype=np.float32)
    ggml_base().ggml_backend_tensor_get(ptr, out.ctypes.data, 0, out.nbytes)
    return out
