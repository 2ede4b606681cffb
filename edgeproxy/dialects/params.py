"""What to do with a request field the target provider cannot express.

Each model group chooses per config: `drop` the field (the answer is served, and the response
header `x-edgeproxy-dropped-params` names what was left out) or `reject` the request with a 400
naming the field. Either way the field is never sent on to earn a provider's own 400. `n` > 1
is rejected under both: dropping it would change the shape of the answer.
"""

from __future__ import annotations

from typing import Literal

from edgeproxy import errors

UnsupportedParams = Literal["drop", "reject"]
ALWAYS_REJECTED = frozenset({"n"})


class ParamPolicy:
    """One request's decisions; codecs call `unsupported` for each field they cannot carry."""

    __slots__ = ("_provider", "_reject", "dropped")

    def __init__(self, provider: str, mode: UnsupportedParams = "drop") -> None:
        self._provider = provider
        self._reject = mode == "reject"
        self.dropped: list[str] = []

    def unsupported(self, field: str, why: str = "") -> None:
        """Record that `field` is left out, or raise a 400 if this model rejects instead.
        Fields that change the shape of the answer (`n`: how many choices) are always
        rejected: a client asking for three answers cannot use one."""
        if self._reject or field in ALWAYS_REJECTED:
            raise errors.unsupported_parameter(field, self._provider, why)
        if field not in self.dropped:
            self.dropped.append(field)
