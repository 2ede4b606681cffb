"""The `passthrough` settings: which provider answers the API paths the proxy does not serve
itself (docs/passthrough.md), apart from the endpoint so that the configuration reads them
without importing the providers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

from edgeproxy.config_reader import Reader
from edgeproxy.config_spec import NAMES, NONEMPTY_TEXT, read, setting
from edgeproxy.providers.settings import ProviderConfig

SECTION: Final = "passthrough"
# The provider kinds each client dialect's other paths may go to.
KINDS: Final = {"openai": ("openai", "azure"), "anthropic": ("anthropic",)}


@dataclass(frozen=True, slots=True)
class PassthroughSettings:
    """`passthrough`: off unless a dialect names its provider."""

    openai: str | None = setting(
        None,
        NONEMPTY_TEXT,
        "Provider (kind openai or azure) that answers the OpenAI paths the proxy does not "
        "serve itself (moderations, images, audio, files, batches...), forwarded as they are.",
        example="openai",
    )
    anthropic: str | None = setting(
        None,
        NONEMPTY_TEXT,
        "Provider (kind anthropic) that answers the Anthropic paths the proxy does not serve "
        "itself (message batches, files...), forwarded as they are.",
        example="anthropic",
    )
    keys: tuple[str, ...] = setting(
        (),
        NAMES,
        "With virtual keys, the key ids that may use these paths (none by default: they are "
        "neither metered nor screened, and every key shares the provider's account).",
    )

    def provider(self, dialect: str) -> str | None:
        """The provider answering `dialect`'s other paths (None: not passed through)."""
        return {"openai": self.openai, "anthropic": self.anthropic}.get(dialect)


def parse_passthrough(
    r: Reader, raw: Any, providers: Mapping[str, ProviderConfig], declared: set[str]
) -> PassthroughSettings:
    """The section, each provider checked: declared, of its dialect's kind. One switched off
    (its credential missing) turns its dialect's pass-through off, as it leaves its models."""
    settings = read(r, PassthroughSettings, raw, SECTION)
    for dialect, kinds in KINDS.items():
        name = settings.provider(dialect)
        if name is None:
            continue
        where = f"{SECTION}.{dialect}"
        if name not in declared:
            r.fail(where, f"no provider named {name!r}")
        elif name not in providers:
            if dialect == "openai":
                settings = replace(settings, openai=None)
            else:
                settings = replace(settings, anthropic=None)
        elif (kind := providers[name].kind) not in kinds:
            r.fail(where, f"provider {name!r} is of kind {kind}, not {' or '.join(kinds)}")
    return settings
