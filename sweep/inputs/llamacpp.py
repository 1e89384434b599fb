"""llama.cpp itself on a GGUF file: exact token ids in, logits and named graph tensors out.

Through llama-cpp-python's low-level C API (its `Llama` class hides the evaluation callback):
one context of `n_ctx` positions, every position's logits, each sequence decoded from position
0 with a cleared cache, nothing prepended (the caller's ids, BOS included, are the input). The
evaluation callback copies out the graph tensors asked for by name (`l_out-L` is the residual
stream after block L) and hands every MUL_MAT to an optional observer (the importance matrix).
Context settings are llama.cpp's defaults (F16 KV cache, flash attention auto), as deployed.
"""

import ctypes
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sweep.base.errors import QfeatError
from sweep.inputs import ggml

log = logging.getLogger(__name__)

# Below this many parameters llama.cpp runs fastest on one thread: splitting small matmuls costs
# more than it saves (tiny: 32 sequences in 0.5 s on one thread, 10 s on two busy cores). The
# numbers are the same on any thread count (tests/unit/inputs/test_deployed.py).
SMALL_MODEL = 10_000_000

_capture = threading.local()
_callback = None  # llama.cpp keeps a pointer to it: must outlive every call


def _on_log(_level: int, text: bytes, _user) -> None:
    lines = getattr(_capture, "lines", None)
    if lines is not None:
        lines.append(text.decode("utf-8", "replace"))


def llama_cpp():
    """The llama_cpp module, its log routed here (kept only while `captured_log` collects)."""
    global _callback
    import llama_cpp as lc

    if _callback is None:
        lc.llama_backend_init()
        _callback = lc.llama_log_callback(_on_log)
        lc.llama_log_set(_callback, ctypes.c_void_p(0))
    return lc


@contextmanager
def captured_log() -> Iterator[list[str]]:
    """llama.cpp's log lines written within the block (this thread's)."""
    llama_cpp()
    _capture.lines = []
    try:
        yield _capture.lines
    finally:
        _capture.lines = None


def last_error(lines: list[str], default: str) -> str:
    """llama.cpp's last error line in a captured log, as one line."""
    errors = [ln.strip() for ln in "".join(lines).splitlines() if "error" in ln or "fail" in ln]
    return errors[-1] if errors else default


def threads_for(model: nn.Module) -> int:
    """llama.cpp's thread count for a model: one when it is small, else torch's."""
    n = sum(p.numel() for p in model.parameters())
    return 1 if n < SMALL_MODEL else torch.get_num_threads()


def residual_name(layer: int) -> str:
    """llama.cpp's graph name of the residual stream after block `layer`."""
    return f"l_out-{layer}"


MulMatObserver = Callable[[ggml.TensorPtr], None]


class LlamaCpp:
    """A GGUF model and one CPU context of `n_ctx` positions (close it, or use `with`)."""

    def __init__(
        self,
        path: Path,
        n_ctx: int,
        n_threads: int,
        capture: tuple[str, ...] = (),
        on_mul_mat: MulMatObserver | None = None,
    ) -> None:
        lc = self._lc = llama_cpp()
        ggml.check_layout()
        self.capture, self.on_mul_mat = set(capture), on_mul_mat
        self.captured: dict[str, np.ndarray] = {}
        self.n_ctx = n_ctx
        self.model = self.ctx = self.batch = None
        params = lc.llama_model_default_params()
        params.n_gpu_layers = 0
        with captured_log() as lines:
            self.model = lc.llama_model_load_from_file(str(path).encode(), params)
        if not self.model:
            raise QfeatError(f"llama.cpp cannot load {path}: {last_error(lines, 'no reason')}")
        self.n_vocab = lc.llama_vocab_n_tokens(lc.llama_model_get_vocab(self.model))
        cp = lc.llama_context_default_params()
        cp.n_ctx = cp.n_batch = cp.n_ubatch = n_ctx
        cp.n_seq_max = 1
        cp.n_threads = cp.n_threads_batch = n_threads
        cp.no_perf = True
        self.settings = {  # what, besides the file, determines llama.cpp's numbers
            "n_ctx": n_ctx,
            "n_threads": n_threads,
            "type_k": int(cp.type_k),
            "type_v": int(cp.type_v),
            "flash_attn_type": int(cp.flash_attn_type),
            "system_info": lc.llama_print_system_info().decode().strip(),
        }
        if self.capture or on_mul_mat:
            self._eval = lc.ggml_backend_sched_eval_callback(self._observe)
            cp.cb_eval, cp.cb_eval_user_data = self._eval, None
        with captured_log() as lines:
            self.ctx = lc.llama_init_from_model(self.model, cp)
        if not self.ctx:
            self.close()
            raise QfeatError(f"llama.cpp cannot make a context: {last_error(lines, 'no reason')}")
        self.batch = lc.llama_batch_init(n_ctx, 0, 1)
        self.error: BaseException | None = None

    def _observe(self, ptr, ask: bool, _user) -> bool:
        """The evaluation callback: first asked whether a tensor is wanted, then handed it."""
        try:
            t = ctypes.cast(ptr, ggml.TensorPtr)
            wanted = ggml.name(t.contents) in self.capture
            mul_mat = self.on_mul_mat is not None and ggml.op(t.contents) == "MUL_MAT"
            if ask:
                return wanted or mul_mat
            if wanted:
                self.captured[ggml.name(t.contents)] = ggml.to_numpy(t)
            if mul_mat:
                self.on_mul_mat(t)
            return True
        except BaseException as err:  # never raise through C: stop, and re-raise after decode
            self.error = err
            return False

    def logits(self, ids: np.ndarray) -> np.ndarray:
        """Logits [len(ids), n_vocab] (float32) of one sequence; captured tensors in `captured`."""
        lc, ids = self._lc, [int(i) for i in ids]
        if not 0 < len(ids) <= self.n_ctx:
            raise QfeatError(f"{len(ids)} tokens do not fit llama.cpp's context of {self.n_ctx}")
        lc.llama_memory_clear(lc.llama_get_memory(self.ctx), True)
        self.captured, self.error = {}, None
        b = self.batch
        b.n_tokens = len(ids)
        for i, token in enumerate(ids):
            b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = token, i, 1, 1
            b.seq_id[i][0] = 0
        status = lc.llama_decode(self.ctx, b)
        if self.error is not None:
            raise self.error
        if status != 0:
            raise QfeatError(f"llama_decode returned {status}")
        shape = (len(ids), self.n_vocab)
        return np.ctypeslib.as_array(lc.llama_get_logits(self.ctx), shape=shape).copy()

    def close(self) -> None:
        """Free the batch, context and model."""
        lc = self._lc
        if self.batch is not None:
            lc.llama_batch_free(self.batch)
        if self.ctx:
            lc.llama_free(self.ctx)
        if self.model:
            lc.llama_model_free(self.model)
        self.model = self.ctx = self.batch = None

    def __del__(self) -> None:
        if getattr(self, "_lc", None) is not None:
            self.close()

    def __enter__(self) -> "LlamaCpp":
        return self

    def __exit__(self, *_exc) -> None:
        self.close()
