"""One way to show values everywhere: 3 significant digits, % with one decimal, typed config."""

from __future__ import annotations

import math
import numbers
from typing import Any

import yaml

DIGITS = 3
MISSING = "–"


def is_missing(v: Any) -> bool:
    """None or a float NaN (pandas' NA included)."""
    if v is None:
        return True
    try:
        return bool(v != v)  # NaN and pd.NA
    except (TypeError, ValueError):
        return False


def number(v: Any) -> str:
    """A number to 3 significant digits (integers whole; no exponent below a million)."""
    if is_missing(v):
        return MISSING
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, numbers.Integral):
        return str(int(v))
    v = float(v)
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == 0:
        return "0"
    if not 1e-3 <= abs(v) < 1e6:
        return f"{v:.{DIGITS - 1}e}"
    rounded = float(f"{v:.{DIGITS}g}")  # 99.96 → 100.0: decimals follow the rounded value
    decimals = DIGITS - 1 - math.floor(math.log10(abs(rounded)))
    return f"{rounded:.{max(decimals, 0)}f}"


def percent(v: Any) -> str:
    """A percentage (already × 100) with one decimal."""
    return MISSING if is_missing(v) else f"{float(v):.1f}"


def config_value(v: Any) -> str:
    """A config value as YAML writes it: true, null, 3, 0.01, [attention, mlp], plain strings."""
    if isinstance(v, tuple):
        v = list(v)
    return (
        yaml.safe_dump(v, default_flow_style=True, width=10**6).strip().removesuffix("...").strip()
    )


class _FlowLists(yaml.SafeDumper):
    """YAML with block mappings and inline lists: `targets: [attention, mlp]`."""


_FlowLists.add_representer(
    list, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True)
)


def yaml_text(data: Any) -> str:
    """A nested dict as YAML with typed scalars (true, null, 3) and unquoted plain strings."""
    return yaml.dump(data, Dumper=_FlowLists, sort_keys=False, default_flow_style=False, width=96)


def cell(v: Any, pct: bool = False) -> str:
    """A table cell: percentages with one decimal, other numbers to 3 significant digits."""
    if is_missing(v):
        return MISSING
    if isinstance(v, str):
        return v
    if pct:
        return percent(v)
    if isinstance(v, (int, float)) or hasattr(v, "dtype"):
        return number(v)
    return config_value(v)
