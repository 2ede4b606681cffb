"""Which deployment holds each recent Responses API answer, so a follow-up goes back to it.

OpenAI's Responses API keeps state on the provider's side: a request naming
`previous_response_id` continues an answer that only the account (and region) that gave it
knows, and the stored-response calls (retrieve, delete, cancel, input items) reach it only
there. In a group of several deployments (two Azure regions, two OpenAI projects), a call sent
to another deployment is refused upstream ("previous response not found"). So the proxy
remembers which deployment gave each answer (its id, read from the answer as it was relayed),
and for which virtual key, and sends a follow-up there, retries included, with no hedge or
failover elsewhere.

The key matters because many tenants share the proxy's one provider account: the provider
would hand any of them any answer whose id they name. An answer remembered for one key is
another key's to continue or read only in the provider's eyes, never in the proxy's.

Bounded (`LIMIT` answers, the least recently named forgotten first), per process, and kept
across configuration reloads (by deployment name: a deployment a reload removed owns nothing
any more). An answer it does not know (older, or given through another pod or worker) is
routed as any request is.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Final, NamedTuple

LIMIT: Final = 10_000


class Holder(NamedTuple):
    """Who has an answer: the deployment that gave it, and the key it was given to (None:
    no virtual keys)."""

    deployment: str
    key: str | None


class ResponseAffinity:
    """Answer ids and who holds them, most recently named last."""

    __slots__ = ("_holders", "_limit")

    def __init__(self, limit: int = LIMIT) -> None:
        self._limit = limit
        self._holders: OrderedDict[str, Holder] = OrderedDict()

    def remember(self, answer_id: str, deployment: str, key: str | None) -> None:
        holders = self._holders
        holders[answer_id] = Holder(deployment, key)
        holders.move_to_end(answer_id)
        if len(holders) > self._limit:
            holders.popitem(last=False)

    def holder(self, answer_id: str) -> Holder | None:
        """Who has the answer `answer_id`, if this process knows it."""
        found = self._holders.get(answer_id)
        if found is not None:
            self._holders.move_to_end(answer_id)
        return found

    def continued(self, payload: dict[str, Any]) -> tuple[str, Holder | None] | None:
        """The answer a Responses request continues (`previous_response_id`) and who holds it;
        None when it continues none."""
        previous = payload.get("previous_response_id")
        if not isinstance(previous, str):
            return None
        return previous, self.holder(previous)

    def forget(self, answer_id: str) -> None:
        """The answer was deleted upstream."""
        self._holders.pop(answer_id, None)
