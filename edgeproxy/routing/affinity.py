"""Which deployment holds each recent Responses API answer, so a follow-up goes back to it.

OpenAI's Responses API keeps state on the provider's side: a request naming
`previous_response_id` continues an answer that only the account (and region) that gave it
knows. In a group of several deployments (two Azure regions, two OpenAI projects), a follow-up
sent to another deployment is refused upstream ("previous response not found"). So the proxy
remembers which deployment gave each answer (its id, read from the answer as it was relayed)
and sends a follow-up there, retries included, with no hedge or failover elsewhere.

Bounded (`LIMIT` answers, the least recently named forgotten first), per process, and kept
across configuration reloads (by deployment name: a deployment a reload removed owns nothing
any more). An answer it does not know (older, or given through another pod or worker) is
routed as any request is.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Final

LIMIT: Final = 10_000


class ResponseAffinity:
    """Answer ids and the names of the deployments that gave them, most recently named last."""

    __slots__ = ("_limit", "_owners")

    def __init__(self, limit: int = LIMIT) -> None:
        self._limit = limit
        self._owners: OrderedDict[str, str] = OrderedDict()

    def remember(self, answer_id: str, deployment: str) -> None:
        owners = self._owners
        owners[answer_id] = deployment
        owners.move_to_end(answer_id)
        if len(owners) > self._limit:
            owners.popitem(last=False)

    def owner(self, payload: dict[str, Any]) -> str | None:
        """The deployment that gave the answer `payload` continues, if this process knows it."""
        previous = payload.get("previous_response_id")
        if not isinstance(previous, str):
            return None
        found = self._owners.get(previous)
        if found is not None:
            self._owners.move_to_end(previous)
        return found
