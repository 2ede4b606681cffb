"""AdmissionReviews in, AdmissionReviews out: the uid echoed, the patch base64 JSONPatch, and
every input the injector cannot use answered `allowed: true` unchanged."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from edgeproxy.injector import review as review_module
from edgeproxy.injector.review import answer
from edgeproxy.injector.settings import InjectorSettings
from tests.support.admission import UID, patch_of, patched, response, review, validate

SETTINGS = InjectorSettings()
POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"generateName": "shop-7d9f-", "annotations": {"edgeproxy.io/inject": "true"}},
    "spec": {"containers": [{"name": "app", "image": "example/app:1"}]},
}
BARE_POD: dict[str, Any] = {**POD, "metadata": {"name": "bare"}}


def test_a_pod_asking_for_injection_gets_its_patch_and_its_uid_back() -> None:
    result = response(answer(orjson.dumps(review(POD)), False, SETTINGS).body)
    assert result["uid"] == UID
    injected = patched(POD, patch_of(result))
    validate(injected, "1.31")
    assert [c["name"] for c in injected["spec"]["initContainers"]] == ["edgeproxy"]
    assert "warnings" not in result


@pytest.mark.parametrize(
    ("path_opted_in", "injected"), [(True, True), (False, False)], ids=["namespace", "annotation"]
)
def test_a_pod_without_annotations_is_injected_only_through_the_namespace_path(
    path_opted_in: bool, injected: bool
) -> None:
    result = response(answer(orjson.dumps(review(BARE_POD)), path_opted_in, SETTINGS).body)
    assert result["uid"] == UID
    assert bool(patch_of(result)) is injected
    if injected:
        validate(patched(BARE_POD, patch_of(result)), "1.31")


@pytest.mark.parametrize(
    ("changes", "outcome"),
    [
        ({"operation": "UPDATE"}, "not a creation"),
        ({"kind": {"group": "apps", "version": "v1", "kind": "Deployment"}}, "not a pod"),
        ({"subResource": "ephemeralcontainers"}, "not a pod"),
    ],
)
def test_other_requests_are_allowed_unchanged(changes: dict[str, Any], outcome: str) -> None:
    body = review(POD)
    body["request"] |= changes
    result = answer(orjson.dumps(body), True, SETTINGS)
    assert result.outcome == outcome
    assert response(result.body) == {"uid": UID, "allowed": True}


def with_request(**changes: Any) -> bytes:
    body = review(POD)
    body["request"] |= changes
    return orjson.dumps(body)


HOSTILE = {
    "not JSON": (b"\x00\xffnot json{", ""),
    "JSON but a list": (b"[1, 2]", ""),
    "wrong kind": (orjson.dumps({**review(POD), "kind": "TokenReview"}), ""),
    "no request": (
        orjson.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}),
        "",
    ),
    "uid not a string": (with_request(uid=7), ""),
    "v1beta1": (orjson.dumps({**review(POD), "apiVersion": "admission.k8s.io/v1beta1"}), UID),
    "object not a mapping": (with_request(object="pod"), UID),
}


@pytest.mark.parametrize(("body", "uid"), HOSTILE.values(), ids=HOSTILE.keys())
def test_unreadable_reviews_are_allowed_with_a_warning(body: bytes, uid: str) -> None:
    result = answer(body, True, SETTINGS)
    assert result.outcome.startswith("malformed")
    reply = response(result.body)
    assert reply["uid"] == uid
    assert "patch" not in reply
    (warning,) = reply["warnings"]
    assert "admitted unchanged" in warning


@pytest.mark.parametrize(
    "pod",
    [
        {"metadata": "nonsense", "spec": {"containers": "app"}},
        {"metadata": {"annotations": ["edgeproxy.io/inject"]}, "spec": None},
        {"spec": {"containers": [None, 3, "x"]}},
    ],
)
def test_nonsense_pods_get_no_patch(pod: dict[str, Any]) -> None:
    reply = response(answer(orjson.dumps(review(pod)), True, SETTINGS).body)
    assert reply == {"uid": UID, "allowed": True}


def test_a_failure_inside_the_injector_admits_the_pod_and_is_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*_: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(review_module, "plan", broken)
    result = answer(orjson.dumps(review(POD)), True, SETTINGS)
    assert result.outcome == "failed"
    reply = response(result.body)
    assert (reply["uid"], "patch" in reply) == (UID, False)
    assert "admitted without the sidecar" in reply["warnings"][0]
    assert any(r.message == "injection failed" and r.exc_info for r in caplog.records)


def test_a_pod_left_alone_for_its_own_good_says_why() -> None:
    pod = {
        **POD,
        "metadata": {"annotations": {"edgeproxy.io/inject": "true", "edgeproxy.io/port": "x"}},
    }
    reply = response(answer(orjson.dumps(review(pod)), False, SETTINGS).body)
    assert "patch" not in reply
    assert reply["warnings"] == [
        "edgeproxy not injected: edgeproxy.io/port: 'x' is not a port number 1-65535"
    ]
