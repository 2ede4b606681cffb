"""AdmissionReviews as the API server sends them, and the pods their answers produce.

The answer's patch is applied with the `jsonpatch` package, an RFC 6902 implementation
independent of edgeproxy's own applier, and the result checked against the Kubernetes OpenAPI
schemas of `kubernetes-validate`, strictly (an unknown field fails).
"""

from __future__ import annotations

import base64
import copy
from typing import Any

import orjson
import pytest

from tests.support.requires import unavailable

try:
    import jsonpatch
    from kubernetes_validate import utils as kube_schema
except ImportError as exc:  # pragma: no cover - depends on the dev extras
    unavailable(
        f"the injector tests need jsonpatch and kubernetes-validate ({exc}): "
        "pip install -e '.[dev]'",
        module=True,
    )

UID = "705ab4f5-6393-11e8-b7cc-42010a800002"


def review(pod: dict[str, Any], *, operation: str = "CREATE", kind: str = "Pod") -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": UID,
            "kind": {"group": "", "version": "v1", "kind": kind},
            "resource": {"group": "", "version": "v1", "resource": kind.lower() + "s"},
            "namespace": "shop",
            "operation": operation,
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": pod,
            "dryRun": False,
        },
    }


def response(body: bytes) -> dict[str, Any]:
    """The `response` of an answer, checked to be a well-formed AdmissionReview v1."""
    answer = orjson.loads(body)
    assert answer["apiVersion"] == "admission.k8s.io/v1"
    assert answer["kind"] == "AdmissionReview"
    result: dict[str, Any] = answer["response"]
    assert result["allowed"] is True
    return result


def patch_of(result: dict[str, Any]) -> list[dict[str, Any]]:
    if "patch" not in result:
        return []
    assert result["patchType"] == "JSONPatch"
    patch: list[dict[str, Any]] = orjson.loads(base64.b64decode(result["patch"]))
    return patch


def patched(pod: dict[str, Any], patch: list[dict[str, Any]]) -> dict[str, Any]:
    """`pod` with `patch` applied by an independent RFC 6902 implementation."""
    result: dict[str, Any] = jsonpatch.apply_patch(copy.deepcopy(pod), patch)
    return result


def validate(pod: dict[str, Any], kube_version: str) -> None:
    """Fails the test when `pod` is not a valid Pod of `kube_version`, strictly."""
    try:
        kube_schema.validate(pod, kube_version, strict=True)
    except kube_schema.ValidationError as err:
        where = ".".join(str(p) for p in err.path)
        pytest.fail(f"not a valid {kube_version} Pod: {where}: {err.message}")
