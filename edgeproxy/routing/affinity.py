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
any more). In a pod of several workers, an answer this worker does not know is asked of the
others (`ask_pod`, edgeproxy/pod_affinity.py), since the kernel spreads an app's connections
over them. An answer nobody here knows (older, or given through another pod) is routed as any
request is.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Final, NamedTuple

LIMIT: Final = 10_000


class Holder(NamedTuple):
    """Who has an answer: the deployment that gave it, and the key it was given to (None:
    no virtual keys)."""

    deployment: str
    key: str | None


# Who holds an answer, as the pod's other workers remember it (None: none does).
AskPod = Callable[[str], Awaitable["Holder | None"]]


class ResponseAffinity:
    """Answer ids and who holds them, most recently named last."""

    __slots__ = ("_holders", "_limit", "ask_pod")

    def __init__(self, limit: int = LIMIT) -> None:
        self._limit = limit
        self._holders: OrderedDict[str, Holder] = OrderedDict()
        self.ask_pod: AskPod | None = None  # set in a worker of a pod

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

    async def find(self, answer_id: str) -> Holder | None:
        """Who has the answer `answer_id`: as this process remembers it, else as another
        worker of the pod does (then remembered here too)."""
        found = self.holder(answer_id)
        if found is None and self.ask_pod is not None:
            found = await self.ask_pod(answer_id)
            if found is not None:
                self.remember(answer_id, found.deployment, found.key)
        return found

    def forget(self, answer_id: str) -> None:
        """The answer was deleted upstream."""
        self._holders.pop(answer_id, None)
