"""Progress bars of the passes (tqdm; off with runtime.progress=false, and off the terminal)."""

from collections.abc import Iterable

from tqdm.auto import tqdm


def progress_bar(iterable: Iterable, total: int, desc: str, progress: bool) -> Iterable:
    """`iterable` with a bar when `progress` is on and the output is a terminal."""
    return tqdm(iterable, total=total, desc=desc, disable=None if progress else True)
