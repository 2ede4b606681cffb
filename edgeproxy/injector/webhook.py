"""`edgeproxy inject`: the mutating admission webhook, served over HTTPS.

Two paths, one per webhook of the MutatingWebhookConfiguration, because an AdmissionReview does
not carry its namespace's labels: the API server's namespaceSelector decides which one it calls.

    POST /inject            pods of other namespaces: injected when annotated
                            edgeproxy.io/inject: "true"
    POST /inject/namespace  pods of namespaces labelled edgeproxy.io/inject=enabled:
                            injected unless annotated edgeproxy.io/inject: "false"
    GET  /healthz           the injector's own probes
"""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from edgeproxy.injector.review import answer
from edgeproxy.injector.settings import InjectorSettings
from edgeproxy.injector.tls import ReloadingCertificate

# An AdmissionReview holds one object, which etcd caps at 1.5 MiB; JSON escaping and the
# review's envelope stay well inside this. Larger bodies get a 413 before they are read whole.
MAX_REVIEW_BYTES = 4 * 1024 * 1024
log = logging.getLogger("edgeproxy.injector")


def build_app(settings: InjectorSettings) -> web.Application:
    async def review(request: web.Request, namespace_opted_in: bool) -> web.Response:
        result = answer(await request.read(), namespace_opted_in, settings)
        log.info(
            "admission review",
            extra={
                "uid": result.uid,
                "namespace": result.namespace,
                "pod": result.pod,
                "outcome": result.outcome,
            },
        )
        return web.Response(body=result.body, content_type="application/json")

    async def by_annotation(request: web.Request) -> web.Response:
        return await review(request, namespace_opted_in=False)

    async def by_namespace(request: web.Request) -> web.Response:
        return await review(request, namespace_opted_in=True)

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application(client_max_size=MAX_REVIEW_BYTES)
    app.router.add_post("/inject", by_annotation)
    app.router.add_post("/inject/namespace", by_namespace)
    app.router.add_get("/healthz", healthz)
    return app


async def serve(
    settings: InjectorSettings, certificate: ReloadingCertificate, host: str, port: int
) -> None:
    """Serve until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    runner = web.AppRunner(build_app(settings), access_log=None, keepalive_timeout=75)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=certificate.context)
    await site.start()
    bound_host, bound_port = runner.addresses[0][:2]
    log.info(
        "edgeproxy injector listening",
        extra={"url": f"https://{bound_host}:{bound_port}", "image": settings.image},
    )
    await stop.wait()
    await runner.cleanup()
