"""Read one job directory and check it against the results contract (sweep.results): a bad
file gives a one-line reason, never a traceback."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sweep.base.errors import QfeatError, one_line
from sweep.results.columns import FEATURE_COLUMNS, OPTIONAL_COLUMNS
from sweep.results.files import FAILURE_FILE, FEATURES_FILE, SUMMARY_FILE
from sweep.results.summary import Summary, parse_summary


@dataclass
class JobRecord:
    """One job's raw results: its summary dict and features frame, wherever they came from."""

    sweep: str
    source: str
    summary: Summary
    features: pd.DataFrame


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
    The fidelity and uncertainty columns are optional: jobs written before them are still read."""
    missing = [c for c in FEATURE_COLUMNS if c not in frame.columns and c not in OPTIONAL_COLUMNS]
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
        payload = json.loads(summary_path.read_bytes().decode("utf-8"))
    except (ValueError, OSError) as err:
        return None, f"{SUMMARY_FILE} unreadable (not UTF-8 JSON): {err}"
    try:
        summary = parse_summary(payload)
    except QfeatError as err:
        return None, str(err)
    if summary.key != directory.name:
        return None, f"{SUMMARY_FILE} key {summary.key} does not match the directory name"
    try:
        features = pd.read_parquet(features_path)
    except Exception as err:  # pyarrow raises several types for corrupt files
        return None, f"{FEATURES_FILE} unreadable: {type(err).__name__}: {err}"
    return JobRecord(sweep, str(directory), summary, features), None
