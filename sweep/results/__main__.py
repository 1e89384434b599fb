"""Print the JSON Schema of summary.json: `python -m sweep.results > docs/summary.schema.json`."""

import json

from sweep.results.summary import summary_json_schema

print(json.dumps(summary_json_schema(), indent=2, sort_keys=True))
