"""OpenAI's and Anthropic's endpoints beside the LLM calls, as the fake upstream serves them
(a `Mode` of tests/support/fake_upstream.py): moderations, file uploads (multipart), speech
(binary audio, streamed) and Anthropic's message batches. The proxy only passes these through
(edgeproxy/passthrough.py), so the fake answers them in their shapes, not their semantics."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

import orjson
from aiohttp import web

from tests.support.fake_upstream import Fail, Frames, Reply

ROUTES = {
    ("POST", "/v1/moderations"): "moderations",
    ("POST", "/v1/files"): "files",
    ("POST", "/v1/audio/speech"): "speech",
    ("POST", "/v1/messages/batches"): "message_batches",
}
SPEECH_FRAMES = 16
SPEECH_FRAME_BYTES = 4096


@dataclass
class Upload:
    """A file part of a multipart upload, as the fake read it."""

    filename: str
    purpose: str
    content: bytes


UPLOAD = web.RequestKey("upload", Upload)


def speech(text: str) -> list[bytes]:
    """The "audio" for `text`: SPEECH_FRAMES frames of bytes derived from it."""
    frames, seed = [], hashlib.sha256(text.encode()).digest()
    for n in range(SPEECH_FRAMES):
        block = hashlib.sha256(seed + n.to_bytes(4, "big")).digest()
        frames.append((block * (SPEECH_FRAME_BYTES // len(block) + 1))[:SPEECH_FRAME_BYTES])
    return frames


def _multipart(content_type: str, body: bytes) -> Upload:
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        fields[str(name)] = (part.get_filename(), payload if isinstance(payload, bytes) else b"")
    filename, content = fields.get("file", (None, b""))
    purpose = fields.get("purpose", (None, b""))[1].decode()
    return Upload(filename or "", purpose, content)


class FakeOtherApis:
    """The `Mode` serving ROUTES; `uploads`: every file received, in order."""

    routes = tuple(ROUTES.values())

    def __init__(self, error: Callable[[Fail, bool], web.Response]) -> None:
        self._error = error  # the fake's own error answer, in OpenAI's or Anthropic's form
        self.uploads: list[Upload] = []

    def owns(self, request: web.Request) -> bool:
        return (request.method, request.path) in ROUTES

    def route(self, request: web.Request) -> str | None:
        return ROUTES.get((request.method, request.path))

    def admit(
        self, request: web.Request, route: str, body: bytes, payload: Any
    ) -> web.Response | None:
        if route == "files":
            upload = _multipart(request.headers.get("content-type", ""), body)
            self.uploads.append(upload)
            request[UPLOAD] = upload
        return None

    def error(self, fail: Fail, request: web.Request) -> web.Response:
        return self._error(fail, self.route(request) == "message_batches")

    def answer(
        self, request: web.Request, route: str, payload: dict[str, Any], reply: Reply
    ) -> web.Response | Frames:
        if route == "speech":
            return Frames(speech(str(payload.get("input"))), reply.headers, "audio/mpeg", b"")
        if route == "moderations":
            inputs = payload.get("input")
            count = len(inputs) if isinstance(inputs, list) else 1
            result = {"flagged": False, "categories": {"hate": False}, "category_scores": {}}
            answer: dict[str, Any] = {
                "id": "modr-fake",
                "model": payload.get("model", "omni-moderation-latest"),
                "results": [result] * count,
            }
        elif route == "files":
            upload = request[UPLOAD]
            answer = {
                "id": "file-fake",
                "object": "file",
                "bytes": len(upload.content),
                "created_at": 1_700_000_000,
                "filename": upload.filename,
                "purpose": upload.purpose,
                "status": "processed",
            }
        else:
            answer = {
                "id": "msgbatch_fake",
                "type": "message_batch",
                "processing_status": "in_progress",
                "request_counts": {
                    "processing": len(payload.get("requests", [])),
                    "succeeded": 0,
                    "errored": 0,
                    "canceled": 0,
                    "expired": 0,
                },
                "created_at": "2026-12-07T00:00:00Z",
                "expires_at": "2026-12-08T00:00:00Z",
                "ended_at": None,
                "cancel_initiated_at": None,
                "archived_at": None,
                "results_url": None,
            }
        return web.json_response(
            answer, headers=reply.headers, dumps=lambda v: orjson.dumps(v).decode()
        )
