"""The JSON Schema, the reference docs and the chart's values schema all come from the one
declaration of the configuration, accept every configuration the repository shows, and reject
a bad value at the field path `check-config` names."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from edgeproxy.cli import main, schema_text
from edgeproxy.config import Config, parse
from edgeproxy.config_docs import CONFIG_EXAMPLE
from edgeproxy.config_reader import MISSING, ConfigError
from edgeproxy.config_schema import config_schema
from edgeproxy.config_spec import NO_EXAMPLE, Declared, Kind, ListOf, MapOf, Section, declared
from edgeproxy.providers import KIND_FIELDS
from tests.support.configs import minimal

REPO = Path(__file__).resolve().parents[1]
GENERATED = {
    "json": REPO / "configs" / "edgeproxy.schema.json",
    "markdown": REPO / "docs" / "configuration.md",
    "helm-values": REPO / "helm" / "edgeproxy" / "values.schema.json",
}
VALIDATOR = jsonschema.Draft202012Validator(config_schema())


def schema_paths(document: Any) -> set[str]:
    """The field paths the schema's errors name, written as `check-config` writes them (a
    missing or unknown key under its parent, a bad list item as its list); for an
    error among alternatives (a value or null, a literal or `${VAR}`), the deepest of the
    alternatives' errors, as editors show it."""
    return {
        path
        for error in VALIDATOR.iter_errors(document)
        for leaf in deepest(error)
        for path in _paths(leaf)
    }


def deepest(error: jsonschema.ValidationError) -> list[jsonschema.ValidationError]:
    if not error.context:
        return [error]
    leaves = [leaf for child in error.context for leaf in deepest(child)]
    depth = max(len(leaf.absolute_path) for leaf in leaves)
    return [leaf for leaf in leaves if len(leaf.absolute_path) == depth]


def _paths(error: jsonschema.ValidationError) -> Iterator[str]:
    where = "".join(
        f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path
    ).lstrip(".")
    if error.validator == "required":
        for name in error.validator_value:
            if name not in error.instance:
                yield f"{where}.{name}" if where else name
    elif error.validator == "additionalProperties":
        known = error.schema.get("properties", {})
        for extra in sorted(set(error.instance) - set(known)):
            yield f"{where}.{extra}" if where else extra
    else:
        yield re.sub(r"\[\d+\]$", "", where)  # an item of a list: check-config names the list


def check_config_paths(document: Any) -> set[str]:
    with pytest.raises(ConfigError) as caught:
        parse(document, {})
    return {problem.split(": ", 1)[0] for problem in caught.value.problems}


@pytest.mark.parametrize("form", sorted(GENERATED))
def test_committed_files_are_what_the_declaration_generates(form: str) -> None:
    assert GENERATED[form].read_text(encoding="utf-8") == schema_text(form), (
        f"{GENERATED[form].relative_to(REPO)} is stale: run make config-reference"
    )


def test_schema_command_prints_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == config_schema()


def test_schemas_are_valid_draft_2020_12() -> None:
    for form in ("json", "helm-values"):
        jsonschema.Draft202012Validator.check_schema(json.loads(schema_text(form)))


@pytest.mark.parametrize(
    "path", ["configs/edgeproxy.yaml", "edgeproxy/default_config.yaml"], ids=lambda p: p
)
def test_schema_accepts_the_reference_configuration(path: str) -> None:
    document = yaml.safe_load((REPO / path).read_text(encoding="utf-8"))
    assert schema_paths(document) == set()


def config_examples() -> Iterator[tuple[str, str]]:
    """Every YAML block of the docs and the README marked as a configuration example."""
    block = re.compile(re.escape(CONFIG_EXAMPLE) + r"\s*```yaml\n(.*?)```", re.DOTALL)
    for path in sorted([*REPO.glob("docs/*.md"), REPO / "README.md"]):
        text = path.read_text(encoding="utf-8")
        for i, match in enumerate(block.finditer(text)):
            yield f"{path.relative_to(REPO)}#{i}", match.group(1)


EXAMPLES = dict(config_examples())


def test_docs_mark_their_configuration_examples() -> None:
    """Each document that shows configuration marks it, so the next test reads it."""
    documents = {name.split("#")[0] for name in EXAMPLES}
    assert {
        "README.md",
        "docs/configuration.md",
        "docs/deployment.md",
        "docs/events.md",
        "docs/guardrails.md",
        "docs/incidents.md",
        "docs/observability.md",
    } <= documents


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_schema_accepts_every_configuration_example_in_the_docs(name: str) -> None:
    assert schema_paths(yaml.safe_load(EXAMPLES[name])) == set()


BAD = {
    "port out of range": (minimal(server={"port": 70000}), "server.port"),
    "port as a literal string": (minimal(server={"port": "8181"}), "server.port"),
    "unknown key": (minimal(server={"prot": 1}), "server.prot"),
    "unknown top-level key": (minimal(srever={}), "srever"),
    "size without a unit": (minimal(server={"max_body": "lots"}), "server.max_body"),
    "zero duration": (minimal(server={"header_timeout": 0}), "server.header_timeout"),
    "duration with a bad unit": (
        minimal(reload={"interval": "5 fortnights"}),
        "reload.interval",
    ),
    "not a boolean": (minimal(server={"access_log": "yes"}), "server.access_log"),
    "unknown choice": (minimal(logging={"level": "loud"}), "logging.level"),
    "unknown provider kind": (minimal(providers={"x": {"kind": "grpc"}}), "providers.x.kind"),
    "provider without kind": (minimal(providers={"x": {}}), "providers.x.kind"),
    "bad timeout": (
        minimal(providers={"mock": {"kind": "mock", "timeouts": {"idle": "soon"}}}),
        "providers.mock.timeouts.idle",
    ),
    "bad provider url": (
        minimal(providers={"o": {"kind": "openai", "api_key": "k", "base_url": "api.openai.com"}}),
        "providers.o.base_url",
    ),
    "empty deployments": (minimal(models={"m": {"deployments": []}}), "models.m.deployments"),
    "misspelt deployment key": (
        minimal(models={"m": {"deployments": [{"provider": "mock", "modle": "x"}]}}),
        "models.m.deployments[0].modle",
    ),
    "negative weight": (
        minimal(models={"m": {"deployments": [{"provider": "mock", "weight": -1}]}}),
        "models.m.deployments[0].weight",
    ),
    "unknown capability": (
        minimal(models={"m": {"deployments": [{"provider": "mock", "capabilities": ["fly"]}]}}),
        "models.m.deployments[0].capabilities",
    ),
    "retry status not an error": (
        minimal(routing={"retry": {"on_status": [200]}}),
        "routing.retry.on_status",
    ),
    "fraction above one": (minimal(routing={"exploration": 2}), "routing.exploration"),
    "model cache group": (
        minimal(models={"m": {"deployments": [{"provider": "mock"}], "cache": {"tll": 5}}}),
        "models.m.cache.tll",
    ),
    "bad key hash": (
        minimal(auth={"mode": "keys", "keys": [{"id": "web", "hash": "abc"}]}),
        "auth.keys[0].hash",
    ),
    "bad pii kind": (
        minimal(guardrails={"policies": {"p": {"pii": {"kinds": ["dna"]}}}}),
        "guardrails.policies.p.pii.kinds",
    ),
    "answers are never blocked": (
        minimal(guardrails={"policies": {"p": {"output": {"mode": "block"}}}}),
        "guardrails.policies.p.output.mode",
    ),
    "incident factor too low": (
        minimal(telemetry={"incidents": {"ttfb_factor": 1}}),
        "telemetry.incidents.ttfb_factor",
    ),
    "incident response key": (
        minimal(telemetry={"incidents": {"responses": {"shift_weight": {"factr": 0.5}}}}),
        "telemetry.incidents.responses.shift_weight.factr",
    ),
    "redis url scheme": (minimal(cache={"redis": {"url": "http://r"}}), "cache.redis.url"),
    "semantic threshold below 0.8": (
        minimal(cache={"semantic": {"threshold": 0.5}}),
        "cache.semantic.threshold",
    ),
    "no local share of limits": (minimal(limits={"local_share": 0}), "limits.local_share"),
    "cache key header not a header name": (
        minimal(cache={"key": {"headers": ["x-team", "x team"]}}),
        "cache.key.headers",
    ),
    "a field of another provider kind": (
        minimal(providers={"mock": {"kind": "mock", "anthropic_version": "2023-06-01"}}),
        "providers.mock.anthropic_version",
    ),
    "a field of another provider kind, the kind in capitals": (
        minimal(providers={"o": {"kind": "OpenAI", "api_key": "k", "api_version": "2024-10-21"}}),
        "providers.o.api_version",
    ),
}


@pytest.mark.parametrize(
    "provider",
    [
        {"kind": "anthropic", "api_key": "k", "anthropic_version": "2023-06-01"},
        {
            "kind": "Azure",
            "api_key": "k",
            "base_url": "https://r.openai.azure.com",
            "api_version": "2024-10-21",
            "max_tokens_field": "max_completion_tokens",
        },
        {"kind": "${KIND}", "api_key": "k", "anthropic_version": "2023-06-01"},
    ],
    ids=["its own kind", "its own kind in capitals", "a kind from the environment"],
)
def test_schema_accepts_a_kind_only_field_beside_its_kind(provider: dict[str, Any]) -> None:
    assert schema_paths(minimal(providers={"p": provider})) == set()


@pytest.mark.parametrize("name", sorted(BAD))
def test_schema_rejects_a_bad_value_at_the_path_check_config_names(name: str) -> None:
    document, path = BAD[name]
    assert path in check_config_paths(document)
    assert path in schema_paths(document)


def test_schema_accepts_what_the_loader_accepts_beyond_literal_values(tmp_path: Path) -> None:
    """`${VAR}` for any scalar, a secret from a file, null for a default, `cache: false`."""
    key = tmp_path / "key"
    key.write_text("sk-file")
    document = minimal(
        server={"port": "${PORT}", "max_body": "${MAX_BODY:-32MiB}", "access_log": "${LOG}"},
        logging={"level": "${LEVEL:-info}"},
        cache={"redis": {"url": "${REDIS_URL:-}"}, "skip_temperature_above": None},
        providers={
            "mock": {"kind": "mock", "enabled": False},
            "o": {"kind": "openai", "api_key_file": str(key)},
        },
        models={"m": {"deployments": [{"provider": "o"}], "cache": False}},
    )
    env = {"PORT": "8181", "MAX_BODY": "1MiB", "LOG": "true", "LEVEL": "debug"}
    assert parse(document, env).server.port == 8181
    assert schema_paths(document) == set()


ACCEPTED_SPELLINGS = {
    "choices in capitals": minimal(
        logging={"level": "INFO", "format": "Text"}, routing={"strategy": "Weighted"}
    ),
    "provider kind and switch in capitals": minimal(
        providers={"mock": {"kind": "Mock", "enabled": "AUTO"}}
    ),
    "tracing protocol in capitals": minimal(telemetry={"tracing": {"protocol": "HTTP/JSON"}}),
    "one capability as a string": minimal(
        models={"m": {"deployments": [{"provider": "mock", "capabilities": "streaming"}]}}
    ),
    "one pii kind as a string": minimal(
        guardrails={"policies": {"p": {"pii": {"kinds": "email"}}}}
    ),
    "one name from the environment": minimal(
        models={"m": {"deployments": [{"provider": "mock", "capabilities": "${CAP:-tools}"}]}},
        cache={"key": {"headers": "${CACHE_HEADER:-x-team}"}},
        guardrails={"policies": {"p": {"pii": {"kinds": "${PII:-email}"}}}},
    ),
}


@pytest.mark.parametrize("name", sorted(ACCEPTED_SPELLINGS))
def test_schema_accepts_every_spelling_the_loader_accepts(name: str) -> None:
    """Choices are read in any case and a list of names may be one name: an editor or `helm
    lint` flagging them would be a false alarm on a configuration that loads."""
    document = ACCEPTED_SPELLINGS[name]
    parse(document, {})
    assert schema_paths(document) == set()


def declared_paths(cls: type, prefix: str) -> Iterator[str]:
    """Every key the declaration of `cls` allows, as a dotted path."""
    for d in declared(cls):
        value = d.spec.value
        if d.spec.inline and isinstance(value, Section):
            yield from declared_paths(value.cls, prefix)
            continue
        path = f"{prefix}{d.key}"
        yield path
        if d.spec.secret:
            yield f"{path}_file"
        if isinstance(value, Section):
            yield from declared_paths(value.cls, f"{path}.")
        elif isinstance(value, ListOf) and isinstance(value.item, Section):
            yield from declared_paths(value.item.cls, f"{path}[].")
        elif isinstance(value, MapOf) and isinstance(value.value, Section):
            yield from declared_paths(value.value.cls, f"{path}.<name>.")


def test_every_declared_key_is_documented_in_the_reference() -> None:
    """docs/configuration.md is the reference of every key (configs/edgeproxy.yaml comments
    the common ones); this holds it complete even if its generator changed."""
    reference = GENERATED["markdown"].read_text(encoding="utf-8")
    missing = [p for p in declared_paths(Config, "") if f"`{p}`" not in reference]
    assert missing == []


@pytest.mark.parametrize(
    ("key", "inherited"),
    [("models.<name>.strategy", "routing.strategy"), ("models.<name>.cache.ttl", "cache.ttl")],
)
def test_reference_shows_the_default_a_model_group_inherits(key: str, inherited: str) -> None:
    """A model group left without these uses the top-level value, not none at all."""
    reference = GENERATED["markdown"].read_text(encoding="utf-8")
    row = next(line for line in reference.splitlines() if line.startswith(f"| `{key}` |"))
    assert row.split(" | ")[2] == inherited


Where = list[str | int]  # a field's place in a document: keys, and list indexes


def scalar_fields(cls: type, where: Where) -> Iterator[tuple[Where, Declared, Kind]]:
    """Every field read by one parser, with where it sits (a map entry named `n`, a list's
    first item)."""
    for d in declared(cls):
        value = d.spec.value
        if d.spec.inline and isinstance(value, Section):
            yield from scalar_fields(value.cls, where)
            continue
        here: Where = [*where, *d.key.split(".")]
        if isinstance(value, Kind):
            yield here, d, value
        elif isinstance(value, Section):
            yield from scalar_fields(value.cls, here)
        elif isinstance(value, ListOf) and isinstance(value.item, Section):
            yield from scalar_fields(value.item.cls, [*here, 0])
        elif isinstance(value, MapOf) and isinstance(value.value, Section):
            yield from scalar_fields(value.value.cls, [*here, "n"])


def document_with(where: Where, value: Any) -> dict[str, Any]:
    """A small valid configuration with `value` at `where` (a provider of a kind the field
    applies to, a model group served by the mock)."""
    document = minimal()
    if where[0] == "providers":
        kinds = KIND_FIELDS.get(str(where[2]), ("openai",))
        document["providers"]["n"] = {"kind": kinds[0], "enabled": "auto"}
    if where[0] == "models":
        document["models"]["n"] = {"deployments": [{"provider": "mock"}]}
    parent: Any = document
    for key, after in itertools.pairwise(where):
        if isinstance(key, int):
            parent = parent[key]
            continue
        if not isinstance(parent.get(key), dict | list):
            parent[key] = [{}] if isinstance(after, int) else {}
        parent = parent[key]
    parent[where[-1]] = value
    return document


def spellings(d: Declared, kind: Kind) -> Iterator[tuple[Any, dict[str, str]]]:
    """Values a person may write for the field, with the environment they need: its default,
    as `${VAR}` and `${VAR:-default}`, null, its example, a choice in capitals."""
    yield None, {}
    literal = kind.literal(d.fixed) if d.fixed not in (MISSING, None) else None
    if isinstance(literal, str | int | float):
        text = str(literal).lower() if isinstance(literal, bool) else str(literal)
        yield literal, {}
        yield "${VALUE}", {"VALUE": text}
        yield f"${{VALUE:-{text}}}", {}
    for example in (d.spec.example, kind.example):
        if example is not NO_EXAMPLE and example is not None:
            yield example, {}
    if "|" in kind.name and isinstance(kind.example, str):
        yield kind.example.upper(), {}


SCALAR_FIELDS = {
    "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in field[0]).lstrip("."): field
    for field in scalar_fields(Config, [])
}


@pytest.mark.parametrize("path", sorted(SCALAR_FIELDS))
def test_schema_accepts_every_value_the_loader_accepts_for_a_field(path: str) -> None:
    """Generated from the declaration: for each field, what a person writes for it; wherever
    the loader takes the value without a word about the field, the schema does too."""
    where, d, kind = SCALAR_FIELDS[path]
    for value, env in spellings(d, kind):
        document = document_with(where, value)
        try:
            parse(document, env)
        except ConfigError as err:
            if any(problem.startswith(f"{path}:") for problem in err.problems):
                continue
        assert path not in schema_paths(document), f"{value!r} with {env}"
