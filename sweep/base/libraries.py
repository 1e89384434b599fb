"""The optional libraries qfeat drives (quantizers, checkpoint formats), each with the pip line
that installs the version qfeat is tested with: checked without importing, imported on use."""

import importlib
import importlib.util
from types import ModuleType

from sweep.base.errors import QfeatError

# Top-level importable module -> the pip requirement that provides it (pyproject.toml pins them).
PIP = {
    "bitsandbytes": "bitsandbytes==0.50.2",
    "llmcompressor": "llmcompressor==0.14.0.1",
    "compressed_tensors": "llmcompressor==0.14.0.1",
    "torchao": "torchao==0.18.0",
    "hqq": "hqq==0.2.8.post1",
    "optimum": "optimum-quanto==0.2.7",
    "datasets": "datasets",
    # compression=gguf and GGUF candidates (llama.cpp is built from source: docs/gguf.md)
    "llama_cpp": "llama-cpp-python==0.3.36",
    "gguf": "gguf==0.19.0",
}


def pip_line(module: str) -> str:
    """The pip requirement that provides `module` (a dotted name; its top level decides)."""
    return PIP.get(module.split(".")[0], module.split(".")[0])


def require(module: str, needed_by: str) -> None:
    """Fail in one line, without importing anything, when `module` is not installed."""
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        found = False
    if not found:
        raise QfeatError(f"{needed_by} needs `pip install {pip_line(module)}` (not installed)")


def load(module: str, needed_by: str) -> ModuleType:
    """Import `module`, or fail in one line with the pip line that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise QfeatError(f"{needed_by} needs `pip install {pip_line(module)}` ({err})") from err
