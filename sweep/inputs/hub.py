"""Loading from the Hugging Face hub cache: one sentence when a repo is not cached and cannot be
downloaded (offline clusters), naming the command that fixes it."""

import os

from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

from sweep.base.errors import QfeatError


def _not_cached(err: BaseException) -> bool:
    """Whether an exception (or one it wraps) means 'not in the local cache and hub unreachable'."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, LocalEntryNotFoundError | OfflineModeIsEnabled):
            return True
        text = str(seen)
        if (
            "couldn't connect to" in text and "cached files" in text
        ) or "OfflineModeIsEnabled" in text:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def hub_cache_dir() -> str:
    """Where huggingface_hub looks for cached repos (HF_HUB_CACHE, else HF_HOME/hub)."""
    from huggingface_hub import constants

    return os.environ.get("HF_HUB_CACHE") or constants.HF_HUB_CACHE


def load_error(what: str, repo: str, err: BaseException, download: str = "") -> QfeatError:
    """One sentence for a failed load: the offline/cache advice when that is the cause."""
    if _not_cached(err):
        offline = "HF_HUB_OFFLINE=1 is set" if os.environ.get("HF_HUB_OFFLINE") else "no hub access"
        return QfeatError(
            f"{what} {repo!r} is not in the Hugging Face cache {hub_cache_dir()!r} and cannot be "
            f"downloaded ({offline}): on a machine with hub access run "
            f"`hf download {repo}{download}` with the same HF_HOME (or HF_HUB_CACHE), "
            "then point HF_HOME at that cache here"
        )
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return QfeatError(f"cannot load {what} {repo!r}: {first}")
