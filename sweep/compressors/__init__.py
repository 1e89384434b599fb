"""Compression methods, one module per family, looked up by name in `registry.COMPRESSORS`.

Importing the package registers every family; each imports its library only when used.
"""

from sweep.compressors import (  # noqa: F401 (registration)
    ao,
    bnb,
    gguf,
    hqq,
    llmc,
    magnitude,
    mixed,
    noise,
    quanto,
    rtn,
)
from sweep.compressors.registry import (
    COMPRESSORS,
    bits_per_weight,
    compress_model,
    restore_targets,
    selected_linears,
    snapshot_targets,
    target_linears,
)

__all__ = [
    "COMPRESSORS",
    "bits_per_weight",
    "compress_model",
    "restore_targets",
    "selected_linears",
    "snapshot_targets",
    "target_linears",
]
