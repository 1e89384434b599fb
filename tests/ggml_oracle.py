"""ggml's own C dequantization (`ggml_get_type_traits(type)->to_float` in libggml-base), the
oracle for qfeat's gguf-py read-back: independent of gguf-py's numpy code."""

import ctypes

import numpy as np

from sweep.inputs.ggml import ggml_base

TO_FLOAT = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.POINTER(ctypes.c_float), ctypes.c_int64)


class TypeTraits(ctypes.Structure):
    """struct ggml_type_traits (ggml.h)."""

    _fields_ = [
        ("type_name", ctypes.c_char_p),
        ("blck_size", ctypes.c_int64),
        ("blck_size_interleave", ctypes.c_int64),
        ("type_size", ctypes.c_size_t),
        ("is_quantized", ctypes.c_bool),
        ("to_float", ctypes.c_void_p),
        ("from_float_ref", ctypes.c_void_p),
    ]


def traits(ggml_type: int) -> TypeTraits:
    """ggml's traits of a type."""
    lib = ggml_base()
    lib.ggml_get_type_traits.restype = ctypes.POINTER(TypeTraits)
    lib.ggml_get_type_traits.argtypes = [ctypes.c_int]
    return lib.ggml_get_type_traits(ggml_type).contents


def c_dequantize(raw: np.ndarray, ggml_type: int, n: int) -> np.ndarray:
    """The float32 values ggml computes from a tensor's stored bytes."""
    raw = np.ascontiguousarray(raw).view(np.uint8).reshape(-1)
    if ggml_type == 0:  # F32 is stored as is
        return raw.view(np.float32).copy()
    t = traits(ggml_type)
    assert t.to_float and n % t.blck_size == 0
    assert raw.nbytes == n // t.blck_size * t.type_size
    out = np.empty(n, dtype=np.float32)
    TO_FLOAT(t.to_float)(raw.ctypes.data, out.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), n)
    return out
