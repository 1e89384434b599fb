"""An importance matrix for llama.cpp's quantizer, by llama.cpp on the calibration slice.

llama-imatrix's statistic (tools/imatrix, IMatrixCollector::collect_imatrix, dense weights):
for every matrix multiplication of a block weight (`blk.*`) by an F32 activation of at least 16
rows, the sum over rows of x_j² per input column j, and the number of rows; the quantizer gets
sum / count. It is collected through llama.cpp's evaluation callback while llama.cpp runs the
F32 GGUF on each calibration sequence (disjoint from the measured tokens), so the activations
are llama.cpp's own. Sums are kept in float64 (llama-imatrix adds in float32).
"""

from pathlib import Path

import numpy as np

from sweep.base.errors import QfeatError
from sweep.inputs import ggml
from sweep.inputs.llamacpp import LlamaCpp

MIN_ROWS = 16  # llama-imatrix skips smaller batches


class Collector:
    """Sums of squared inputs per column, and row counts, by GGUF weight name."""

    def __init__(self) -> None:
        self.sums: dict[str, np.ndarray] = {}
        self.counts: dict[str, int] = {}

    def __call__(self, ptr: ggml.TensorPtr) -> None:
        t = ptr.contents
        weight, activation = t.src[0], t.src[1]
        name = ggml.name(weight.contents)
        name = name.split("#")[1] if "#" in name else name  # llama-imatrix's filter_tensor_name
        if not name.startswith("blk."):
            return
        if activation.contents.ne[1] < MIN_ROWS or activation.contents.type != ggml.TYPE_F32:
            return
        if weight.contents.ne[2] * weight.contents.ne[3] != 1:
            raise QfeatError(f"{name}: stacked (expert) weights have no importance matrix here")
        x = ggml.to_numpy(activation).astype(np.float64)
        x = x.reshape(-1, x.shape[-1])
        self.sums[name] = self.sums.get(name, 0.0) + (x * x).sum(0)
        self.counts[name] = self.counts.get(name, 0) + len(x)

    def values(self) -> dict[str, np.ndarray]:
        """What llama-quantize hands the quantizer: mean squared input per column."""
        if not self.sums:
            raise QfeatError("llama.cpp ran no block matrix multiplication to collect")
        return {k: (v / self.counts[k]).astype(np.float32) for k, v in self.sums.items()}


def importance_matrix(source: Path, calibration: np.ndarray, threads: int) -> dict:
    """GGUF weight name -> mean squared input per column, over `calibration` [n, seq_len]."""
    collect = Collector()
    with LlamaCpp(source, calibration.shape[1], threads, on_mul_mat=collect) as runtime:
        for row in calibration:
            runtime.logits(row)
    return collect.values()
