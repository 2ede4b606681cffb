"""The webhook over real HTTPS: a certificate from a test CA, AdmissionReviews posted with
aiohttp's client, the certificate renewed in place, and bodies too large to read."""

from __future__ import annotations

import io
import os
import signal
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import orjson
import pytest
import trustme
from aiohttp import web

from edgeproxy.injector.settings import InjectorSettings
from edgeproxy.injector.tls import ReloadingCertificate
from edgeproxy.injector.webhook import MAX_REVIEW_BYTES, build_app
from tests.support.admission import UID, patch_of, patched, response, review, validate

SERVICE = "edgeproxy-injector.edgeproxy.svc"
POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "shop"},
    "spec": {"containers": [{"name": "app", "image": "example/app:1"}]},
}


@dataclass
class Webhook:
    url: str
    ca: trustme.CA
    cert: Path
    key: Path

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context

    def issue(self, *names: str) -> None:
        """Write a newly issued certificate over the served one, as cert-manager would."""
        issued = self.ca.issue_cert(*names)
        issued.cert_chain_pems[0].write_to_path(str(self.cert))
        issued.private_key_pem.write_to_path(str(self.key))


@pytest.fixture
async def webhook(tmp_path: Path) -> AsyncIterator[Webhook]:
    ca = trustme.CA()
    hook = Webhook("", ca, tmp_path / "tls.crt", tmp_path / "tls.key")
    hook.issue(SERVICE)
    certificate = ReloadingCertificate(hook.cert, hook.key)
    runner = web.AppRunner(build_app(InjectorSettings()))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=certificate.context)
    await site.start()
    port = runner.addresses[0][1]
    hook.url = f"https://127.0.0.1:{port}"
    yield hook
    await runner.cleanup()


async def post(webhook: Webhook, path: str, body: bytes, server_name: str = SERVICE) -> bytes:
    connector = aiohttp.TCPConnector(ssl=webhook.client_context())
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.post(
            webhook.url + path,
            data=body,
            headers={"Content-Type": "application/json", "Host": server_name},
            server_hostname=server_name,
        ) as reply:
            assert reply.status == 200, await reply.text()
            assert reply.content_type == "application/json"
            return await reply.read()


async def certificate_covers(webhook: Webhook, server_name: str) -> bool:
    """Whether a new connection's certificate verifies for `server_name`."""
    connector = aiohttp.TCPConnector(ssl=webhook.client_context())
    async with aiohttp.ClientSession(connector=connector) as session:
        try:
            async with session.get(webhook.url + "/healthz", server_hostname=server_name) as reply:
                assert reply.status == 200
                return True
        except aiohttp.ClientConnectorCertificateError:
            return False


async def test_review_over_https_through_the_namespace_path_injects_the_pod(
    webhook: Webhook,
) -> None:
    result = response(await post(webhook, "/inject/namespace", orjson.dumps(review(POD))))
    assert result["uid"] == UID
    validate(patched(POD, patch_of(result)), "1.31")


async def test_review_over_https_through_the_annotation_path_leaves_a_bare_pod(
    webhook: Webhook,
) -> None:
    result = response(await post(webhook, "/inject", orjson.dumps(review(POD))))
    assert result == {"uid": UID, "allowed": True}


async def test_a_renewed_certificate_is_served_from_the_next_connection(webhook: Webhook) -> None:
    renewed = "edgeproxy-injector.edgeproxy.svc.cluster.local"
    assert await certificate_covers(webhook, SERVICE)
    assert not await certificate_covers(webhook, renewed)
    webhook.issue(renewed)
    assert await certificate_covers(webhook, renewed)
    assert not await certificate_covers(webhook, SERVICE)


async def test_a_half_written_renewal_keeps_the_previous_certificate(webhook: Webhook) -> None:
    webhook.key.write_text("-----BEGIN PRIVATE KEY-----\ntruncated")
    assert await certificate_covers(webhook, SERVICE)


async def test_malformed_review_over_https_is_allowed_with_a_warning(webhook: Webhook) -> None:
    result = response(await post(webhook, "/inject", b"{not json"))
    assert result["uid"] == ""
    assert "admitted unchanged" in result["warnings"][0]


async def test_a_body_over_the_cap_is_refused_before_it_is_read_whole(webhook: Webhook) -> None:
    connector = aiohttp.TCPConnector(ssl=webhook.client_context())
    async with aiohttp.ClientSession(connector=connector) as session:
        body = io.BytesIO(b"{" + b" " * MAX_REVIEW_BYTES + b"}")
        async with session.post(
            webhook.url + "/inject", data=body, server_hostname=SERVICE
        ) as reply:
            assert reply.status == 413
        async with session.get(webhook.url + "/healthz", server_hostname=SERVICE) as reply:
            assert (reply.status, await reply.text()) == (200, "ok")


@pytest.fixture
def served_injector(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Webhook]]:
    """A real `edgeproxy inject` process on a free port, its certificate from a test CA."""
    ca = trustme.CA()
    hook = Webhook("", ca, tmp_path / "tls.crt", tmp_path / "tls.key")
    hook.issue(SERVICE)
    settings = tmp_path / "settings.yaml"
    settings.write_text("image: registry.example.com/edgeproxy:7\nnative_sidecar: false\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "edgeproxy", "inject", "--host", "127.0.0.1", "--port", "0"],
        env={
            **os.environ,
            "EDGEPROXY_INJECTOR_SETTINGS": str(settings),
            "EDGEPROXY_INJECTOR_CERT": str(hook.cert),
            "EDGEPROXY_INJECTOR_KEY": str(hook.key),
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        started = orjson.loads(process.stderr.readline())
        assert started["msg"] == "edgeproxy injector listening", started
        hook.url = started["url"]
        yield process, hook
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)


async def test_the_inject_command_serves_its_settings_and_stops_cleanly_on_sigterm(
    served_injector: tuple[subprocess.Popen[str], Webhook],
) -> None:
    process, hook = served_injector
    result = response(await post(hook, "/inject/namespace", orjson.dumps(review(POD))))
    injected = patched(POD, patch_of(result))
    validate(injected, "1.28")
    sidecar = injected["spec"]["containers"][-1]
    assert sidecar["image"] == "registry.example.com/edgeproxy:7"
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 0
    logged = [orjson.loads(line) for line in err.splitlines()]
    assert [(r["msg"], r.get("outcome")) for r in logged] == [
        ("admission review", "injected (container)")
    ]
