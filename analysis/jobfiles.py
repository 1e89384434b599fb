"""Read one job directory and check it against the results contract; bad files give a reason."""

from __future__ import annotations

import json
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from sweep.constants import (
    FAILURE_FILE,
    FEATURE_COLUMNS,
    FEATURES_FILE,
    FIDELITY_COLUMNS,
    SUMMARY_FILE,
)

REQUIRED_SUMMARY = {
    "key": str,
    "status": str,
    "model": str,
    "saes": list,
    "compression": str,
    "bits": numbers.Integral,
    "metrics": dict,
}
REQUIRED_METRICS = (
    "n_active",
    "frac_survived",
    "frac_blurred",
    "frac_destroyed",
    "fp_ppl",
    "q_ppl",
)
# Optional summary blocks analysis reads: absent or null is fine, another type is not.
OPTIONAL_BLOCKS = ("config", "per_sae", "prediction", "matched", "reference", "versions")


@dataclass
class JobRecord:
    """One job's raw results: its summary dict and features frame, wherever they came from."""

    sweep: str
    source: str
    summary: dict[str, Any]
    features: pd.DataFrame


def one_line(text: object) -> str:
    """A reason as a single console/report line (library errors can span several)."""
    return " ".join(str(text).split())


def _dtype_ok(series: pd.Series, expected: str) -> bool:
    dt = series.dtype
    if expected == "string":
        return pd.api.types.is_string_dtype(dt) or (
            pd.api.types.is_object_dtype(dt)
            and series.map(lambda v: isinstance(v, str) or v is None).all()
        )
    if expected == "bool":
        return pd.api.types.is_bool_dtype(dt)
    if expected == "int64":
        return pd.api.types.is_integer_dtype(dt) and not pd.api.types.is_bool_dtype(dt)
    return pd.api.types.is_float_dtype(dt)


def check_features(frame: pd.DataFrame) -> str | None:
    """Why a features frame breaks the FEATURE_COLUMNS contract, or None when it is valid.
    The fidelity columns are optional: jobs written before them are still read."""
    missing = [c for c in FEATURE_COLUMNS if c not in frame.columns and c not in FIDELITY_COLUMNS]
    if missing:
        return f"{FEATURES_FILE} lacks columns {missing}"
    bad = [
        f"{c} is {frame[c].dtype}, expected {t}"
        for c, (t, _) in FEATURE_COLUMNS.items()
        if c in frame.columns and not _dtype_ok(frame[c], t)
    ]
    if bad:
        return f"{FEATURES_FILE} has wrong dtypes: {'; '.join(bad)}"
    if len(frame) == 0:
        return f"{FEATURES_FILE} has no rows"
    return None


def _is_number(v: Any) -> bool:
    return v is None or (isinstance(v, numbers.Real) and not isinstance(v, bool))


def check_summary(summary: Any) -> str | None:
    """Why a summary dict breaks the contract, or None when it is valid."""
    if not isinstance(summary, dict):
        return f"{SUMMARY_FILE} is not a JSON object"
    missing = [k for k in REQUIRED_SUMMARY if k not in summary]
    if missing:
        return f"{SUMMARY_FILE} lacks keys {missing}"
    wrong = [
        f"{k} is {type(summary[k]).__name__}"
        for k, t in REQUIRED_SUMMARY.items()
        if not isinstance(summary[k], t) or isinstance(summary[k], bool)
    ]
    wrong += [
        f"{k} is {type(summary[k]).__name__}"
        for k in OPTIONAL_BLOCKS
        if summary.get(k) is not None and not isinstance(summary[k], dict)
    ]
    if isinstance(summary["saes"], list) and not all(isinstance(h, str) for h in summary["saes"]):
        wrong.append("saes holds a non-string")
    if wrong:
        return f"{SUMMARY_FILE} has wrong types: {'; '.join(wrong)}"
    if summary["status"] != "complete":
        return f"{SUMMARY_FILE} status is {summary['status']!r}, not 'complete'"
    metrics = summary["metrics"]
    missing = [k for k in REQUIRED_METRICS if k not in metrics]
    if missing:
        return f"{SUMMARY_FILE} metrics lack {missing}"
    bad = [k for k in REQUIRED_METRICS if not _is_number(metrics[k])]
    if bad:
        return f"{SUMMARY_FILE} metrics {bad} are not numbers"
    return None


def _failure_reason(failure: Path) -> str:
    try:
        error = json.loads(failure.read_bytes().decode("utf-8")).get("error", "?")
    except (ValueError, OSError, AttributeError) as err:
        return f"failed ({FAILURE_FILE} unreadable: {err})"
    return f"failed: {error}"


def read_job(directory: Path, sweep: str) -> tuple[JobRecord | None, str | None]:
    """A job directory as a record, or None and the (one-line) reason it cannot be used."""
    rec, reason = _read(directory, sweep)
    return rec, None if reason is None else one_line(reason)


def _read(directory: Path, sweep: str) -> tuple[JobRecord | None, str | None]:
    summary_path, features_path = directory / SUMMARY_FILE, directory / FEATURES_FILE
    if not summary_path.is_file():
        if (directory / FAILURE_FILE).is_file():
            return None, _failure_reason(directory / FAILURE_FILE)
        return None, f"no {SUMMARY_FILE} (job unfinished?)"
    if not features_path.is_file():
        return None, f"no {FEATURES_FILE}"
    try:  # bytes first: binary garbage is a UnicodeDecodeError, truncation a JSONDecodeError
        summary = json.loads(summary_path.read_bytes().decode("utf-8"))
    except (ValueError, OSError) as err:
        return None, f"{SUMMARY_FILE} unreadable (not UTF-8 JSON): {err}"
    try:
        features = pd.read_parquet(features_path)
    except Exception as err:  # pyarrow raises several types for corrupt files
        return None, f"{FEATURES_FILE} unreadable: {type(err).__name__}: {err}"
    if isinstance(summary, dict) and summary.get("key") not in (None, directory.name):
        return None, f"{SUMMARY_FILE} key {summary['key']} does not match the directory name"
    return JobRecord(sweep, str(directory), summary, features), None
