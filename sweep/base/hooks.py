"""TransformerLens residual-stream hook names (`blocks.<layer>.hook_resid_<pre|post>`): the one
parser every layer uses."""

import re

from sweep.base.errors import QfeatError

RESID_HOOK = re.compile(r"blocks\.(\d+)\.hook_resid_(pre|post)")


def hook_name(layer: int, where: str = "post") -> str:
    """The hook name of the residual stream before ('pre') or after ('post') block `layer`."""
    return f"blocks.{layer}.hook_resid_{where}"


def hook_layer(hook: str) -> int | None:
    """The block index of a residual-stream hook name, None for any other name."""
    match = RESID_HOOK.fullmatch(hook)
    return int(match.group(1)) if match else None


def parse_hook(hook: str, n_layers: int) -> tuple[int, str]:
    """(layer, 'pre' | 'post') of a residual-stream hook of a model with `n_layers` blocks, or
    one line saying what is valid."""
    match = RESID_HOOK.fullmatch(hook)
    if match is None:
        raise QfeatError(
            f"SAE hook {hook!r} is not measured: qfeat reads blocks.<layer>.hook_resid_pre "
            "and blocks.<layer>.hook_resid_post"
        )
    layer = int(match.group(1))
    if not 0 <= layer < n_layers:
        raise QfeatError(f"SAE hook {hook!r} does not exist in a model with {n_layers} layers")
    return layer, match.group(2)
