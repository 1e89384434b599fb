"""Compression methods, one module per family, looked up by name in `registry.COMPRESSORS`.

Importing the package registers every family; each imports its library only when used.
"""

from sweep.compressors import (  # noqa: F401 (registration)
    ao,
    bnb,
    hqq,
    llmc,
    magnitude,
    noise,
    quanto,
    rtn,
)
from sweep.compressors.registry import (
    COMPRESSORS,
    compress_model,
    restore_targets,
    snapshot_targets,
    target_linears,
)

__all__ = [
    "COMPRESSORS",
    "compress_model",
    "restore_targets",
    "snapshot_targets",
    "target_linears",
]
