"""qfeat-plan's arguments: its own key=value fields, checked in one line each, and the rest
as Hydra overrides of the job config."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sweep.base.errors import QfeatError
from sweep.config.compression import METHODS, TARGETS, check_selection
from sweep.planning.search import Target

FIELDS = (
    "method", "bits", "min_survived", "min_watched_r", "max_delta_ppl", "targets", "blocks",
)  # fmt: skip


@dataclass(frozen=True)
class Request:
    """What qfeat-plan was asked: method, candidate widths, target, selection, job overrides."""

    out: Path
    method: str
    bits: tuple[int, ...]
    target: Target
    targets: list[str]
    blocks: list[int] | None
    overrides: list[str]


def _value(key: str, text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise QfeatError(f"{key}={text!r} is not a value") from err


def _int_list(key: str, value: Any) -> list[int]:
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise QfeatError(f"{key}={value!r}: give integers, e.g. {key}=[3,4,8]")
    return [int(v) for v in values]


def _number(key: str, value: Any, low: float, high: float) -> float | None:
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high:
        raise QfeatError(f"{key}={value!r} must be a number in [{low}, {high}]")
    return float(value)


def parse_request(out: Path, args: list[str]) -> Request:
    """The request from `key=value` arguments (bad values: one line, before any work)."""
    given: dict[str, Any] = {}
    overrides = []
    for arg in args:
        key, sep, text = arg.partition("=")
        if sep and key in FIELDS:
            given[key] = _value(key, text)
        else:
            overrides.append(arg)
    method = str(given.get("method", "rtn"))
    mixable = sorted(n for n in METHODS.names() if METHODS.get(n).mixable)
    if method not in mixable:
        raise QfeatError(f"method={method}; a plan takes {mixable}")
    bits = sorted(set(_int_list("bits", given.get("bits", [3, 4, 8]))))
    choices = METHODS.get(method).bit_choices
    if len(bits) < 2 or (choices is not None and not set(bits) <= set(choices)):
        raise QfeatError(f"bits={bits}: give two or more widths {method} takes, e.g. bits=[3,4,8]")
    target = Target(
        min_survived=_number("min_survived", given.get("min_survived"), 0.0, 1.0),
        min_watched_r=_number("min_watched_r", given.get("min_watched_r"), -1.0, 1.0),
        max_delta_ppl=_number("max_delta_ppl", given.get("max_delta_ppl"), -1e9, 1e9),
    )
    if (target.min_survived, target.min_watched_r, target.max_delta_ppl) == (None, None, None):
        raise QfeatError("give a target: min_survived=F and/or min_watched_r=T (max_delta_ppl=P)")
    targets = given.get("targets", list(TARGETS))
    targets = [str(t) for t in (targets if isinstance(targets, list) else [targets])]
    blocks = given.get("blocks")
    blocks = None if blocks is None else _int_list("blocks", blocks)
    check_selection(targets, blocks, "plan")
    return Request(out, method, tuple(bits), target, targets, blocks, overrides)
