"""The Shield contract's JSON Schemas (docs/), as validators for the tests."""

from __future__ import annotations

from pathlib import Path

import orjson
from jsonschema import Draft202012Validator

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _validator(name: str) -> Draft202012Validator:
    schema = orjson.loads((DOCS / name).read_bytes())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


REQUEST_SCHEMA = _validator("shield-request.schema.json")
RESPONSE_SCHEMA = _validator("shield-response.schema.json")
