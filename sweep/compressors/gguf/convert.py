"""An HF model to an F32 GGUF by llama.cpp's own converter, from the installed llama.cpp.

The converter (convert_hf_to_gguf.py, its conversion/ package and the gguf-py it was written
with) ships in llama-cpp-python's source distribution but not in its wheel. It is taken from
the sdist of the installed version, so converter and quantizer are one llama.cpp commit:
`pip download --no-binary :all: llama-cpp-python==<installed>` once, keeping only those files,
under $QFEAT_CACHE (default ~/.cache/qfeat); $QFEAT_LLAMA_CPP_SOURCE names a llama.cpp tree to
use instead. PyPI's gguf 0.19.0 reads and dequantizes files, but the converter needs its own
gguf-py (it fails on PyPI's), so it runs in a subprocess (patched_converter.py).
"""

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from importlib import metadata
from pathlib import Path

from torch import nn
from transformers import AutoTokenizer

from sweep.base.errors import QfeatError

log = logging.getLogger(__name__)

PACKAGE = "llama-cpp-python"
KEPT = ("convert_hf_to_gguf.py", "conversion/", "gguf-py/")  # under vendor/llama.cpp/
RUNNER = Path(__file__).with_name("patched_converter.py")
TIMEOUT_S = 3600
_sources: dict[str, Path] = {}  # weights digest -> F32 GGUF converted in this process
_workdir: tempfile.TemporaryDirectory | None = None


def cache_root() -> Path:
    """Where qfeat keeps what it fetches once (the llama.cpp converter)."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "qfeat"
    return Path(os.environ.get("QFEAT_CACHE", default))


def converter_source() -> Path:
    """A llama.cpp tree holding the converter of the installed llama-cpp-python (fetched once)."""
    if override := os.environ.get("QFEAT_LLAMA_CPP_SOURCE"):
        return Path(override)
    version = metadata.version(PACKAGE)
    dest = cache_root() / f"llama.cpp-{version}"
    if (dest / "convert_hf_to_gguf.py").is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        log.info("fetching llama.cpp's converter from the %s %s sdist", PACKAGE, version)
        fetch = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary"]
        fetch += [":all:", f"{PACKAGE}=={version}", "-d", tmp]
        proc = subprocess.run(fetch, capture_output=True, text=True)
        sdists = list(Path(tmp).glob("*.tar.gz"))
        if proc.returncode or len(sdists) != 1:
            raise QfeatError(
                f"cannot fetch llama.cpp's converter (`pip download --no-binary :all: "
                f"{PACKAGE}=={version}`): {proc.stderr.strip()[-300:] or 'no sdist'}; "
                "set QFEAT_LLAMA_CPP_SOURCE to a llama.cpp source tree instead"
            )
        unpacked = Path(tmp) / "llama.cpp"
        with tarfile.open(sdists[0]) as tar:
            members = []
            for member in tar.getmembers():
                _, _, rest = member.name.partition("/vendor/llama.cpp/")
                if rest.startswith(KEPT):
                    member.name = rest
                    members.append(member)
            tar.extractall(unpacked, members=members, filter="data")
        try:
            unpacked.rename(dest)
        except OSError:  # another process put it there first
            if not (dest / "convert_hf_to_gguf.py").is_file():
                raise
    return dest


def run_converter(model_dir: Path, out: Path) -> None:
    """llama.cpp's converter on an HF checkpoint directory, writing an F32 GGUF at `out`."""
    proc = subprocess.run(
        [sys.executable, str(RUNNER), str(converter_source()), str(model_dir), str(out)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    if proc.returncode or not out.is_file():
        lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
        raise QfeatError(
            f"llama.cpp's converter cannot convert this model: {(lines or ['no output'])[-1]}"
        )


def weights_digest(model: nn.Module) -> str:
    """sha256 of the model's config and parameters (the converter's whole input but the
    tokenizer, which comes from the same checkpoint)."""
    h = hashlib.sha256(model.config.to_json_string().encode())
    h.update(str(model.name_or_path).encode())
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def save_checkpoint(model: nn.Module, out: Path) -> None:
    """`model` and its tokenizer as an HF checkpoint directory (what the converter reads)."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(model.name_or_path)
    except (OSError, ValueError) as err:
        raise QfeatError(
            f"compression=gguf: llama.cpp's converter needs the model's tokenizer next to it "
            f"({model.name_or_path!r}): {err}"
        ) from err
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def source_gguf(model: nn.Module) -> Path:
    """The F32 GGUF of `model`, converted once per process for the same weights (a sweep over
    types converts once)."""
    global _workdir
    digest = weights_digest(model)
    if digest not in _sources:
        if _workdir is None:
            _workdir = tempfile.TemporaryDirectory(prefix="qfeat-gguf-")
        work = Path(_workdir.name) / digest[:16]
        checkpoint = work / "hf"
        save_checkpoint(model, checkpoint)
        run_converter(checkpoint, work / "source-f32.gguf")
        shutil.rmtree(checkpoint)
        _sources[digest] = work / "source-f32.gguf"
    return _sources[digest]
