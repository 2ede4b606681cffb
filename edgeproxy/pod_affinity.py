"""Which worker of the pod remembers a Responses answer (routing/affinity.py).

The kernel spreads an application's connections over a pod's workers, so a follow-up, or a
call on a stored answer, may reach a worker other than the one that relayed the answer. That
worker asks the others, over their admin sockets in the pod's directory
(`GET /admin/affinity/{answer_id}`, with the admin token), only when it does not know the
answer itself, and remembers what it is told. A worker that does not answer within `TIMEOUT`
(restarting, or stuck) is taken to know nothing: the request is then routed as any is.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Final

import orjson

from edgeproxy.config_reader import Secret
from edgeproxy.routing.affinity import Holder
from edgeproxy.worker import ask_worker

PATH: Final = "/admin/affinity/"
TIMEOUT: Final = 0.5  # seconds a worker may take to answer


class PodAffinity:
    """Asks the pod's other workers; `answer_id` must be one path segment (checked before)."""

    __slots__ = ("_directory", "_own", "_token")

    def __init__(self, directory: Path, own: Path, token: Secret | None) -> None:
        self._directory = directory
        self._own = own  # this worker's socket, not asked
        self._token = token  # the admin token the workers' admin apps started with

    async def __call__(self, answer_id: str) -> Holder | None:
        sockets = [s for s in self._directory.glob("admin-*.sock") if s != self._own]
        if not sockets:
            return None
        token = self._token
        auth = f"Authorization: Bearer {token.reveal()}\r\n" if token is not None else ""
        request = f"GET {PATH}{answer_id} HTTP/1.0\r\n{auth}\r\n".encode("latin-1")
        answers = await asyncio.gather(*(_ask(socket, request) for socket in sockets))
        return next((found for found in answers if found is not None), None)


async def _ask(socket: Path, request: bytes) -> Holder | None:
    try:
        async with asyncio.timeout(TIMEOUT):
            answer = await ask_worker(socket, request)
    except (OSError, TimeoutError):
        return None
    head, _, body = answer.partition(b"\r\n\r\n")
    if head.split(b" ", 2)[1:2] != [b"200"]:
        return None
    try:
        found = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(found, dict):
        return None
    deployment, key = found.get("deployment"), found.get("key")
    if not isinstance(deployment, str) or not (key is None or isinstance(key, str)):
        return None
    return Holder(deployment, key)
