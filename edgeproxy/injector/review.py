"""AdmissionReview (admission.k8s.io/v1) in, AdmissionReview out: the webhook's protocol, kept
apart from HTTP so hostile input is tested without a socket.

Every answer allows the pod. A review that cannot be read, a kind other than a Pod being
created, or a failure inside the injector gets `allowed: true` without a patch (and a warning
the API server shows to whoever created the pod): the webhook never blocks a pod by itself;
only the operator can choose that, with `failurePolicy: Fail`, and then only for a webhook that
cannot be reached.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from typing import Any

import orjson

from edgeproxy.injector.patch import Plan, plan
from edgeproxy.injector.settings import InjectorSettings

API_VERSION = "admission.k8s.io/v1"
log = logging.getLogger("edgeproxy.injector")


@dataclass(frozen=True, slots=True)
class Answer:
    """The response body, and what the log line about it says."""

    body: bytes
    uid: str
    outcome: str
    namespace: str = ""
    pod: str = ""


def _response(uid: str, result: Plan | None, warnings: tuple[str, ...]) -> bytes:
    response: dict[str, Any] = {"uid": uid, "allowed": True}
    if result is not None and result.patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(orjson.dumps(result.patch)).decode("ascii")
    if warnings:
        response["warnings"] = list(warnings)
    return orjson.dumps(
        {"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": response}
    )


def _refuse_to_read(uid: str, why: str) -> Answer:
    warning = f"edgeproxy injector: {why}; the object was admitted unchanged"
    return Answer(_response(uid, None, (warning,)), uid, f"malformed: {why}")


def _request(body: bytes) -> dict[str, Any] | Answer:
    """The review's `request`, or the answer to a review that cannot be read."""
    try:
        review = orjson.loads(body)
    except orjson.JSONDecodeError:
        return _refuse_to_read("", "the request is not JSON")
    if not isinstance(review, dict) or review.get("kind") != "AdmissionReview":
        return _refuse_to_read("", "the request is not an AdmissionReview")
    request = review.get("request")
    if not isinstance(request, dict) or not isinstance(request.get("uid"), str):
        return _refuse_to_read("", "the AdmissionReview has no request uid")
    if review.get("apiVersion") != API_VERSION:
        return _refuse_to_read(request["uid"], f"expected apiVersion {API_VERSION}")
    return request


def answer(body: bytes, namespace_opted_in: bool, settings: InjectorSettings) -> Answer:
    """The AdmissionReview answering `body`."""
    request = _request(body)
    if isinstance(request, Answer):
        return request
    uid: str = request["uid"]
    kind = request.get("kind")
    if not isinstance(kind, dict) or kind.get("kind") != "Pod" or request.get("subResource"):
        return Answer(_response(uid, None, ()), uid, "not a pod")
    if request.get("operation") != "CREATE":
        return Answer(_response(uid, None, ()), uid, "not a creation")
    pod = request.get("object")
    if not isinstance(pod, dict):
        return _refuse_to_read(uid, "the AdmissionReview has no pod object")
    namespace = str(request.get("namespace") or "")
    metadata = pod.get("metadata")
    names = metadata if isinstance(metadata, dict) else {}
    name = str(names.get("name") or names.get("generateName") or "")
    try:
        result = plan(pod, namespace_opted_in, settings)
    except Exception:
        log.exception("injection failed", extra={"uid": uid, "namespace": namespace, "pod": name})
        warning = "edgeproxy injector failed on this pod; it was admitted without the sidecar"
        return Answer(_response(uid, None, (warning,)), uid, "failed", namespace, name)
    return Answer(_response(uid, result, result.warnings), uid, result.reason, namespace, name)
