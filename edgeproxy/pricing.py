"""What tokens cost: the pricing table, model-id resolution and the cost of one answer.

The table ships inside the package (`edgeproxy/pricing.yaml`; `configs/pricing.yaml` is a
copy). `load_pricing` reads it, then an operator's file, then inline overrides: an entry in a
later layer replaces the earlier entry of the same id whole, so a price never carries a
`source` and `as_of` it did not come from. Every layer is validated, and every problem is
reported at once with its field path, as the configuration is (`ConfigError`).

Prices are US dollars per million tokens. Resolving `price(provider_kind, model)`:

1. `bedrock/anthropic.claude-...` (a table section, a slash, an id) looks in that section
   whatever the provider kind; otherwise the section named by the provider kind, and for
   `azure` then `openai` (Azure's global deployments list OpenAI's prices; give an `azure`
   section to price regional ones).
2. Bedrock ids lose an inference profile's geography (`us.`, `eu.`, `apac.`, `global.`...)
   and an ARN everything up to its last `/`.
3. In a section: the exact id, then an entry's `aliases`, then the longest id the model
   starts with when all that follows is version suffixes: dates (`-2024-08-06`,
   `-20250929`, `@20241022`, `-05-20`, `-09-2025`), snapshot numbers (`-0613`, `-002`),
   `-latest`, `-preview`, `-exp`, Bedrock versions (`-v2:0`) and context sizes (`:200k`).
   So `gpt-4o-2024-08-06` is `gpt-4o`, while `gpt-4o-audio-preview` (other prices) is not;
   a snapshot priced differently (`gpt-4o-2024-05-13`) has its own exact entry.
   Ids are compared in lower case.

Cost (`cost_nanos`): `Usage.input_tokens` is the whole prompt, cached reads and cache writes
included (see `edgeproxy.dialects.neutral.Usage`; the Anthropic and Bedrock dialects add
their separate counts back in), so the fresh part is what remains after both are taken out,
and each part is charged once at its own rate. A missing `cached_input` or `cache_write`
rate charges those tokens as input. Reasoning tokens are part of `output_tokens`. A
`long_context` tier prices the whole request when the prompt exceeds `above_tokens` (Gemini's
and GPT-5.x's long prompts, Claude Haiku 5.5's). Anthropic's one-hour cache writes cost more
than the five-minute writes priced here; `Usage` does not tell them apart.

Money is counted in integer nano-dollars: a rate becomes integer pico-dollars per token
(exact to a millionth of a dollar per million tokens), a request's cost is rounded once to
nano-dollars, and sums of nano-dollars never drift. Floats appear only at the edges (`cost`,
and the US dollars budgets are given in).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from edgeproxy.config_reader import ConfigError
from edgeproxy.dialects.neutral import Usage

NANOS_PER_USD = 1_000_000_000
_PICOS_PER_NANO = 1000
_PICOS_PER_TOKEN_PER_USD_PER_MTOK = 1_000_000  # $1 per million tokens = 1e6 pico-dollars/token

# Sections whose ids another section's lookups fall back on.
_FALLBACK = {"azure": "openai"}
_BEDROCK_GEOGRAPHY = re.compile(r"^(?:us|eu|apac|jp|au|ca|us-gov|global)\.")
_VERSION_SUFFIXES = re.compile(
    r"(?:[-@](?:\d{4}-\d{2}-\d{2}|\d{8}|\d{2}-\d{2}|\d{2}-\d{4}|\d{3,4}|latest|preview|exp)"
    r"|-v\d+(?::\d+)?|:\d+k)+"
).fullmatch
_PRICE_FIELDS = ("input", "output", "cached_input", "cache_write")
_ENTRY_FIELDS = (*_PRICE_FIELDS, "source", "as_of", "aliases", "long_context")
_LONG_FIELDS = ("above_tokens", *_PRICE_FIELDS)


@dataclass(frozen=True, slots=True)
class LongContext:
    """The rates of a request whose prompt exceeds `above_tokens` (all of it, output too)."""

    above_tokens: int
    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """A model's list prices in US dollars per million tokens, where they were read and when.

    `cached_input` (prompt-cache reads) and `cache_write` are None where the provider has no
    such rate.
    """

    input: float
    output: float
    cached_input: float | None
    cache_write: float | None
    source: str
    as_of: str
    long_context: LongContext | None = None


_Entry = tuple[ModelPrice, tuple[str, ...]]  # a price and its aliases


def nanos(usd: float) -> int:
    """US dollars as integer nano-dollars, the unit spend is summed in."""
    return round(usd * NANOS_PER_USD)


def cost_nanos(price: ModelPrice, usage: Usage) -> int:
    """What `usage` costs at `price`, in nano-dollars (rounded half up, once)."""
    rates: ModelPrice | LongContext = price
    if price.long_context is not None and usage.input_tokens > price.long_context.above_tokens:
        rates = price.long_context
    fresh = max(0, usage.input_tokens - usage.cached_tokens - usage.cache_write_tokens)
    picos = (
        _picos(rates.input) * fresh
        + _picos(rates.cached_input, rates.input) * usage.cached_tokens
        + _picos(rates.cache_write, rates.input) * usage.cache_write_tokens
        + _picos(rates.output) * usage.output_tokens
    )
    return (picos + _PICOS_PER_NANO // 2) // _PICOS_PER_NANO


def cost(price: ModelPrice, usage: Usage) -> float:
    """What `usage` costs at `price`, in US dollars."""
    return cost_nanos(price, usage) / NANOS_PER_USD


def _picos(rate: float | None, otherwise: float = 0.0) -> int:
    """Pico-dollars per token of a rate in US dollars per million tokens."""
    return round((otherwise if rate is None else rate) * _PICOS_PER_TOKEN_PER_USD_PER_MTOK)


class _Section:
    """One provider's prices with their lookup structures, built once."""

    __slots__ = ("aliases", "by_length", "prices")

    def __init__(self, prices: dict[str, ModelPrice], aliases: dict[str, str]) -> None:
        self.prices = prices
        self.aliases = aliases
        self.by_length = sorted(prices, key=len, reverse=True)

    def find(self, model: str) -> ModelPrice | None:
        found = self.prices.get(model)
        if found is not None:
            return found
        target = self.aliases.get(model)
        if target is not None:
            return self.prices[target]
        for known in self.by_length:
            if model.startswith(known) and _VERSION_SUFFIXES(model, len(known)):
                return self.prices[known]
        return None


class PricingTable:
    """Prices by section (a provider kind) and model id; see the module docstring."""

    __slots__ = ("_sections",)

    def __init__(self, entries: Mapping[str, Mapping[str, _Entry]]) -> None:
        self._sections = {
            section: _Section(
                {model: price for model, (price, _) in models.items()},
                {alias: model for model, (_, aliases) in models.items() for alias in aliases},
            )
            for section, models in entries.items()
        }

    def price(self, provider_kind: str, model: str) -> ModelPrice | None:
        """The price of `model` served by a provider of `provider_kind`, None when unknown."""
        model = model.lower()
        section, slash, rest = model.partition("/")
        if slash and section in self._sections:
            provider_kind, model = section, rest
        if provider_kind == "bedrock":
            model = _BEDROCK_GEOGRAPHY.sub("", model.rpartition("/")[2])
        fallback = _FALLBACK.get(provider_kind)
        for name in (provider_kind, fallback) if fallback else (provider_kind,):
            table = self._sections.get(name)
            if table is not None and (found := table.find(model)) is not None:
                return found
        return None

    def entries(self) -> Iterator[tuple[str, str, ModelPrice]]:
        """Every (section, model id, price), for listing and reporting."""
        for section, table in self._sections.items():
            for model, price in table.prices.items():
                yield section, model, price

    def __eq__(self, other: object) -> bool:
        """Tables with the same prices are equal (two loads of one configuration are)."""
        if not isinstance(other, PricingTable):
            return NotImplemented
        mine, theirs = self._sections, other._sections
        return mine.keys() == theirs.keys() and all(
            (t.prices, t.aliases) == (theirs[name].prices, theirs[name].aliases)
            for name, t in mine.items()
        )

    __hash__ = None  # type: ignore[assignment]


def embedded_pricing_text() -> str:
    """The table shipped inside the package (configs/pricing.yaml is a copy)."""
    return resources.files("edgeproxy").joinpath("pricing.yaml").read_text("utf-8")


def load_pricing(
    overrides: Mapping[str, Any] | None = None, extra_file: str | None = None
) -> PricingTable:
    """The embedded table, then `extra_file`'s entries, then `overrides`' (problems are
    reported under `pricing`, the file's path and `pricing.overrides` respectively)."""
    problems: list[str] = []
    entries: dict[str, dict[str, _Entry]] = {}
    layers: list[tuple[str, Any]] = [("pricing", _parse_yaml(embedded_pricing_text(), "pricing"))]
    if extra_file is not None:
        layers.append((extra_file, _read(extra_file)))
    if overrides is not None:
        layers.append(("pricing.overrides", overrides))
    for root, raw in layers:
        for section, models in _Layer(root, problems).sections(raw):
            entries.setdefault(section, {}).update(models)
    for section, models in entries.items():
        _check_aliases(section, models, problems)
    if problems:
        raise ConfigError(problems)
    return PricingTable(entries)


def _read(path: str) -> Any:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read the file: {exc.strerror}"]) from None
    return _parse_yaml(text, path)


def _parse_yaml(text: str, source: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError([f"{source}: not valid YAML{at}: {problem}"]) from None


def _check_aliases(section: str, models: Mapping[str, _Entry], problems: list[str]) -> None:
    """An alias must name one entry and must not hide an id."""
    owner: dict[str, str] = {}
    for model, (_, aliases) in models.items():
        for alias in aliases:
            where = f"pricing.{section}.{model}.aliases"
            if alias in models:
                problems.append(f"{where}: {alias!r} is the id of another entry")
            elif alias in owner:
                problems.append(f"{where}: {alias!r} is already an alias of {owner[alias]!r}")
            owner.setdefault(alias, model)


class _Layer:
    """Reads one layer of the table, collecting problems with their field paths."""

    __slots__ = ("problems", "root")

    def __init__(self, root: str, problems: list[str]) -> None:
        self.root = root
        self.problems = problems

    def fail(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def sections(self, raw: Any) -> Iterator[tuple[str, dict[str, _Entry]]]:
        if raw is None:
            return
        if not isinstance(raw, dict):
            self.fail(self.root, "expected a mapping of provider sections")
            return
        for section, models in raw.items():
            path = f"{self.root}.{section}"
            if not isinstance(section, str) or not section:
                self.fail(path, "a section is named by a provider kind")
            elif not isinstance(models, dict):
                self.fail(path, "expected a mapping of model ids to prices")
            else:
                yield section.lower(), self._models(path, models)

    def _models(self, path: str, raw: dict[Any, Any]) -> dict[str, _Entry]:
        models = {}
        for model, entry in raw.items():
            where = f"{path}.{model}"
            if not isinstance(model, str) or not model:
                self.fail(where, "a model id is a non-empty string")
                continue
            parsed = self._entry(where, entry)
            if parsed is not None:
                models[model.lower()] = parsed
        return models

    def _entry(self, path: str, raw: Any) -> _Entry | None:
        fields = self._mapping(path, raw, _ENTRY_FIELDS)
        if fields is None:
            return None
        price = ModelPrice(
            input=self._rate(path, fields, "input", required=True) or 0.0,
            output=self._rate(path, fields, "output", required=True) or 0.0,
            cached_input=self._rate(path, fields, "cached_input"),
            cache_write=self._rate(path, fields, "cache_write"),
            source=self._source(f"{path}.source", fields.get("source")),
            as_of=self._date(f"{path}.as_of", fields.get("as_of")),
            long_context=self._long_context(f"{path}.long_context", fields.get("long_context")),
        )
        return price, self._aliases(f"{path}.aliases", fields.get("aliases"))

    def _mapping(self, path: str, raw: Any, allowed: tuple[str, ...]) -> dict[str, Any] | None:
        if not isinstance(raw, dict):
            self.fail(path, "expected a mapping of prices")
            return None
        for key in raw:
            if key not in allowed:
                self.fail(f"{path}.{key}", f"unknown field (allowed: {', '.join(allowed)})")
        return raw

    def _rate(
        self, path: str, fields: dict[str, Any], key: str, *, required: bool = False
    ) -> float | None:
        value = fields.get(key)
        if value is None:
            if required:
                self.fail(f"{path}.{key}", "required (US dollars per million tokens)")
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            self.fail(f"{path}.{key}", f"expected a number of dollars >= 0, got {value!r}")
            return None
        return float(value)

    def _source(self, path: str, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            self.fail(path, "required: where the price was read (the pricing page's URL)")
            return ""
        return value

    def _date(self, path: str, value: Any) -> str:
        if isinstance(value, datetime.date):
            return value.isoformat()
        if isinstance(value, str):
            try:
                return datetime.date.fromisoformat(value).isoformat()
            except ValueError:
                pass
        self.fail(path, f"required: the date the price was read, as YYYY-MM-DD, got {value!r}")
        return ""

    def _aliases(self, path: str, value: Any) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.fail(path, "expected a list of model ids")
            return ()
        return tuple(alias.lower() for alias in value)

    def _long_context(self, path: str, raw: Any) -> LongContext | None:
        if raw is None:
            return None
        fields = self._mapping(path, raw, _LONG_FIELDS)
        if fields is None:
            return None
        above = fields.get("above_tokens")
        if isinstance(above, bool) or not isinstance(above, int) or above < 1:
            self.fail(f"{path}.above_tokens", f"expected a token count >= 1, got {above!r}")
            above = 1
        return LongContext(
            above_tokens=above,
            input=self._rate(path, fields, "input", required=True) or 0.0,
            output=self._rate(path, fields, "output", required=True) or 0.0,
            cached_input=self._rate(path, fields, "cached_input"),
            cache_write=self._rate(path, fields, "cache_write"),
        )
