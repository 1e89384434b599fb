"""qfeat sweep: everything one job does — load, compress, measure, record."""

import logging
import re
from collections.abc import Callable


class _DropMessages(logging.Filter):
    """Drops a logger's records whose message matches a pattern (while `when()` holds)."""

    def __init__(self, pattern: str, when: Callable[[], bool] = lambda: True) -> None:
        super().__init__()
        self.pattern, self.when = re.compile(pattern), when

    def filter(self, record: logging.LogRecord) -> bool:
        return not (self.pattern.search(record.getMessage()) and self.when())


def _torch_without_cuda() -> bool:
    """Whether the installed torch is a CPU build (called only once torch is imported)."""
    import torch

    return not torch.backends.cuda.is_built()


# bitsandbytes (imported by TransformerLens) warns at import that an optional CPU kernel from the
# model hub is missing: nothing a qfeat user can act on, so only its errors reach the console.
logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
# torchao is imported by transformers whenever it is installed. At import it tries to load its
# CUDA-only kernels (_C_mxfp8, _C_cutlass_90a), which a CPU build of torch cannot, and registers
# Enums with torch's pytree, which torch 2.13 deprecates; each prints a warning no qfeat user can
# act on. Only those messages are dropped (a failed kernel only on a CPU build of torch): the
# loggers' other warnings still reach the console.
logging.getLogger("torchao").addFilter(
    _DropMessages(r"^Failed to load .*/torchao/_C_\w+\S*\.so", when=_torch_without_cuda)
)
logging.getLogger("torch.utils._pytree").addFilter(
    _DropMessages(r"is an Enum subclass and is now natively supported")
)
