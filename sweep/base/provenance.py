"""Where a result came from: the installed versions of the libraries it depends on and the
qfeat source commit."""

import subprocess
from importlib import metadata
from pathlib import Path

TRACKED_PACKAGES = (
    "torch",
    "transformers",
    "transformer-lens",
    "sae-lens",
    "hydra-core",
    "numpy",
    "pandas",
    "scipy",
    "scikit-learn",
    "hqq",
    "optimum-quanto",
    "llama-cpp-python",
    "gguf",
)


def library_versions() -> dict[str, str | None]:
    """Installed versions of the libraries a result depends on."""
    out: dict[str, str | None] = {}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit() -> str | None:
    """The qfeat source commit (with '+dirty' when modified), or None outside a checkout."""
    root = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return sha + ("+dirty" if dirty else "")
