"""The telemetry events' JSON Schema (docs/events.schema.json), as a validator for the tests."""

from __future__ import annotations

import orjson
from jsonschema import Draft202012Validator

from tests.support.shield_schemas import DOCS

_SCHEMA = orjson.loads((DOCS / "events.schema.json").read_bytes())
Draft202012Validator.check_schema(_SCHEMA)
EVENT_SCHEMA = Draft202012Validator(_SCHEMA)
