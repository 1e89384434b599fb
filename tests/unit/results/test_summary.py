"""summary.json's contract: one definition (sweep.results.summary) written, read and documented;
an unknown schema version or a malformed file is refused in one line."""

import json

import pytest
from synthetic import features_frame, summary_of

from conftest import ROOT
from sweep.base.errors import QfeatError
from sweep.results.summary import SCHEMA_VERSION, parse_summary, summary_json_schema


def test_the_documented_schema_is_the_generated_one() -> None:
    documented = json.loads((ROOT / "docs" / "summary.schema.json").read_text())
    assert documented == summary_json_schema(), "regenerate: python -m sweep.results > docs/..."


def test_a_summary_round_trips_through_json() -> None:
    summary = summary_of("a" * 16, features_frame([0.99, 0.5, 0.1, float("nan")]))
    text = json.dumps(summary.to_json(), allow_nan=True)
    again = parse_summary(json.loads(text))
    assert json.dumps(again.to_json(), sort_keys=True) == json.dumps(
        summary.to_json(), sort_keys=True
    )
    assert again.schema_version == SCHEMA_VERSION


@pytest.mark.parametrize("version", [None, 1, SCHEMA_VERSION + 1])
def test_an_unknown_schema_version_is_refused_in_one_line(version) -> None:
    payload = summary_of("a" * 16, features_frame([0.99, 0.5])).to_json()
    payload["schema_version"] = version
    if version is None:
        del payload["schema_version"]
    with pytest.raises(QfeatError, match=rf"schema_version {version!r}; this qfeat reads") as err:
        parse_summary(payload)
    assert "\n" not in str(err.value)


def test_a_malformed_record_names_the_field() -> None:
    payload = summary_of("a" * 16, features_frame([0.99, 0.5])).to_json()
    payload["metrics"]["n_active"] = "many"
    with pytest.raises(QfeatError, match=r"summary.json metrics.n_active: Input should be"):
        parse_summary(payload)
    payload = summary_of("a" * 16, features_frame([0.99, 0.5])).to_json()
    payload["metrics"]["surprise"] = 1
    with pytest.raises(QfeatError, match=r"metrics.surprise: Unexpected keyword argument"):
        parse_summary(payload)
