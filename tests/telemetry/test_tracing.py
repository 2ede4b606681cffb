"""Tracing, through the proxy with the official openai SDK: a SERVER span per request, a cache
lookup span and a CLIENT span per upstream attempt under it, GenAI semantic convention
attributes, W3C trace context in from the client and out to each attempt, nothing secret in any
span, spans exported over OTLP/HTTP in both encodings; and, with tracing off, no tracing module
loaded and no tracing code called on the request path."""

from __future__ import annotations

import gc
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import openai
import orjson
import pytest

from edgeproxy.app import ProxyServer
from edgeproxy.config import parse
from edgeproxy.config_reader import ConfigError
from edgeproxy.exchange import Exchange
from edgeproxy.operations import Operation
from edgeproxy.redact import MASK, Redactor
from edgeproxy.telemetry import tracing as seam
from edgeproxy.telemetry.spans import CLIENT, ERROR, INTERNAL, SERVER, UNSET, Span, SpanRecord
from edgeproxy.telemetry.tracing_settings import TracingSettings
from tests.conftest import StackFactory, _settled
from tests.routing.test_dispatch import in_order, rig, served_by
from tests.support.fake_upstream import Fail, FakeUpstream, Reply
from tests.support.otlp import JSON, PROTOBUF, KeptSpans, receiver
from tests.support.redis_servers import free_port
from tests.support.stack import CLIENT_KEY, Stack, background_done, proxy_config, stop_stack

TracedFactory = Callable[..., Awaitable[Stack]]
MESSAGES = [{"role": "user", "content": "Say hello"}]
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN_ID = "b7ad6b7169203331"
PROTOCOL_CONTENT_TYPES = {"http/protobuf": PROTOBUF, "http/json": JSON}
TELEMETRY = Path(seam.__file__).parent
# The modules a request's tracing runs in on the event loop (span_attributes.py runs in the
# exporter's thread, but on the loop for a test's sink, as with these tests').
TRACING_CODE = {
    str(TELEMETRY / name)
    for name in ("tracing.py", "request_spans.py", "span_attributes.py", "spans.py", "w3c.py")
}


@pytest.fixture
def exporter() -> KeptSpans:
    return KeptSpans()


@pytest.fixture
async def traced(exporter: KeptSpans) -> AsyncIterator[TracedFactory]:
    """`await traced(tracing={...}, **proxy_config options)`: a stack with tracing on, its
    spans kept in `exporter` as they end; checked for leaks and stopped after the test."""
    started: list[Stack] = []

    async def factory(tracing: dict[str, Any] | None = None, **config: Any) -> Stack:
        fake = FakeUpstream(seed=0)
        await fake.start()
        sections = {"telemetry": {"tracing": {"enabled": True, **(tracing or {})}}}
        proxy = ProxyServer(proxy_config(fake.url, sections=sections, **config), span_sink=exporter)
        await proxy.start()
        stack = Stack(proxy, fake)
        started.append(stack)
        return stack

    yield factory
    for stack in started:
        await _settled(stack)
        await stop_stack(stack)


async def ask(stack: Stack, model: str = "gpt-4o", **options: Any) -> None:
    """A chat completion through the official SDK (`options`: the SDK's; `stream=True` reads
    the stream to its end)."""
    sdk = openai.AsyncOpenAI(base_url=stack.openai_url, api_key=CLIENT_KEY, max_retries=0)
    async with sdk as client:
        if options.pop("stream", False):
            stream = await client.chat.completions.create(
                model=model, messages=MESSAGES, stream=True, **options
            )
            async for _ in stream:
                pass
        else:
            await client.chat.completions.create(model=model, messages=MESSAGES, **options)


def of_kind(spans: list[Span], kind: int) -> list[Span]:
    return [span for span in spans if span.kind == kind]


def one(spans: list[Span]) -> Span:
    assert len(spans) == 1, [span.name for span in spans]
    return spans[0]


def attributes(span: Span) -> dict[str, Any]:
    """All of the span's attributes: those it shares with spans like it, and its own."""
    return {**span.shared, **span.attributes}


def started(span: Span) -> int:
    return span.start_ns


def ids(traceparent: str) -> tuple[int, int]:
    """The trace and span ids a `traceparent` names."""
    _, trace_id, span_id, _ = traceparent.split("-")
    return int(trace_id, 16), int(span_id, 16)


def context(span: Span) -> tuple[int, int]:
    return span.trace_id, span.span_id


def sampled(traceparent: str) -> bool:
    """The W3C sampled flag (the other bit the proxy sets says the trace id is random)."""
    return bool(int(traceparent.rsplit("-", 1)[1], 16) & 1)


async def test_a_responses_api_call_is_traced_as_a_chat_with_its_usage(
    traced: TracedFactory, exporter: KeptSpans
) -> None:
    stack = await traced()
    stack.fake.default["responses"] = Reply(prompt_tokens=6, completion_tokens=3)
    sdk = openai.AsyncOpenAI(base_url=stack.openai_url, api_key=CLIENT_KEY, max_retries=0)
    async with sdk as client, client.responses.stream(model="gpt-4o", input="Hello") as stream:
        await stream.get_final_response()
    await background_done(stack)
    server, client_span = one(of_kind(exporter, SERVER)), one(of_kind(exporter, CLIENT))
    assert (server.name, client_span.name) == ("chat gpt-4o", "chat gpt-4o-2024-08-06")
    found = attributes(server)
    assert found["gen_ai.operation.name"] == "chat"
    assert (found["gen_ai.usage.input_tokens"], found["gen_ai.usage.output_tokens"]) == (6, 3)


async def test_a_request_is_a_server_span_with_a_cache_span_and_a_client_span_under_it(
    traced: TracedFactory, exporter: KeptSpans
) -> None:
    stack = await traced(cache={"enabled": True})
    await ask(stack)
    spans = exporter
    server = one(of_kind(spans, SERVER))
    cache = one(of_kind(spans, INTERNAL))
    client = one(of_kind(spans, CLIENT))
    assert (server.name, cache.name, client.name) == (
        "chat gpt-4o",
        "cache lookup",
        "chat gpt-4o-2024-08-06",
    )
    assert server.parent_id == 0
    for child in (cache, client):
        assert child.parent_id == server.span_id
        assert not child.parent_remote
        assert child.trace_id == server.trace_id
    assert attributes(cache)["edgeproxy.cache.status"] == "miss"


async def test_a_cache_hit_makes_no_client_span(traced: TracedFactory, exporter: KeptSpans) -> None:
    stack = await traced(cache={"enabled": True})
    await ask(stack)
    await background_done(stack)
    exporter.clear()
    await ask(stack)
    spans = exporter
    assert [span.kind for span in spans] == [INTERNAL, SERVER]
    assert attributes(one(of_kind(spans, INTERNAL)))["edgeproxy.cache.status"] == "hit-l1"
    assert attributes(one(of_kind(spans, SERVER)))["edgeproxy.cache.status"] == "hit-l1"
    assert stack.fake.calls["chat"] == 1


@pytest.mark.parametrize("stream", [False, True])
async def test_spans_carry_the_genai_semantic_convention_attributes(
    traced: TracedFactory, exporter: KeptSpans, stream: bool
) -> None:
    stack = await traced()
    stack.fake.default["chat"] = Reply(prompt_tokens=21, completion_tokens=8)
    options = {"stream": True, "stream_options": {"include_usage": True}} if stream else {}
    await ask(stack, **options)
    spans = exporter
    server, client = one(of_kind(spans, SERVER)), one(of_kind(spans, CLIENT))
    usage = {"gen_ai.usage.input_tokens": 21, "gen_ai.usage.output_tokens": 8}
    assert (
        attributes(server).items()
        >= {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.provider.name": "openai",
            "http.request.method": "POST",
            "http.route": "/v1/chat/completions",
            "http.response.status_code": 200,
            "edgeproxy.model_group": "gpt-4o",
            "edgeproxy.attempts": 1,
            "edgeproxy.stream": stream,
            **usage,
        }.items()
    )
    port = int(stack.fake.url.rsplit(":", 1)[1])
    assert (
        attributes(client).items()
        >= {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o-2024-08-06",
            "gen_ai.provider.name": "openai",
            "server.address": "127.0.0.1",
            "server.port": port,
            "http.response.status_code": 200,
            "edgeproxy.deployment": "openai-up/gpt-4o-2024-08-06",
            **usage,
        }.items()
    )
    assert "error.type" not in attributes(server) | attributes(client)
    assert server.start_ns <= client.start_ns <= client.end_ns <= server.end_ns


async def test_a_retried_request_has_a_client_span_per_attempt_each_sent_upstream(
    traced: TracedFactory, exporter: KeptSpans
) -> None:
    stack = await traced(routing={"retry": {"max_attempts": 2, "backoff_base": "1ms"}})
    stack.fake.script("chat", Fail(503))
    await ask(stack)
    spans = exporter
    server = one(of_kind(spans, SERVER))
    failed, answered = sorted(of_kind(spans, CLIENT), key=started)
    assert attributes(failed)["http.response.status_code"] == 503
    assert attributes(failed)["error.type"] == "503"
    assert failed.status == ERROR
    assert attributes(answered)["http.response.status_code"] == 200
    assert "error.type" not in attributes(answered)
    assert attributes(server)["edgeproxy.attempts"] == 2
    sent = [ids(request.headers["traceparent"]) for request in stack.fake.requests]
    assert sent == [context(failed), context(answered)]


async def test_an_incoming_traceparent_becomes_the_parent_and_its_tracestate_travels_on(
    traced: TracedFactory, exporter: KeptSpans
) -> None:
    stack = await traced()
    given = f"00-{TRACE_ID}-{CLIENT_SPAN_ID}-01"
    headers = {"traceparent": given, "tracestate": "vendor=opaque"}
    await ask(stack, extra_headers=headers)
    spans = exporter
    server, client = one(of_kind(spans, SERVER)), one(of_kind(spans, CLIENT))
    assert server.parent_remote
    assert f"{server.parent_id:016x}" == CLIENT_SPAN_ID
    assert f"{server.trace_id:032x}" == TRACE_ID
    assert server.tracestate == client.tracestate == "vendor=opaque"
    upstream = stack.fake.requests[0].headers
    assert upstream["traceparent"] == f"00-{TRACE_ID}-{client.span_id:016x}-01"
    assert upstream["tracestate"] == "vendor=opaque"


async def test_a_translated_request_carries_its_attempts_trace_context_too(
    traced: TracedFactory, exporter: KeptSpans
) -> None:
    stack = await traced()
    await ask(stack, model="claude-sonnet")
    client = one(of_kind(exporter, CLIENT))
    assert attributes(client)["gen_ai.provider.name"] == "anthropic"
    assert attributes(client)["gen_ai.request.model"] == "claude-sonnet-4-5"
    (request,) = stack.fake.requests
    assert request.route == "messages"
    assert ids(request.headers["traceparent"]) == context(client)


@pytest.mark.parametrize(
    ("ratio", "incoming", "recorded"),
    [
        (0.0, None, False),
        (0.0, "01", True),  # the client sampled it: its choice is kept
        (1.0, "00", False),  # the client did not
        (1.0, None, True),
    ],
)
async def test_sampling_follows_the_ratio_unless_the_client_decided(
    traced: TracedFactory,
    exporter: KeptSpans,
    ratio: float,
    incoming: str | None,
    recorded: bool,
) -> None:
    stack = await traced(tracing={"sample_ratio": ratio})
    headers = {"traceparent": f"00-{TRACE_ID}-{CLIENT_SPAN_ID}-{incoming}"} if incoming else {}
    await ask(stack, extra_headers=headers)
    assert bool(exporter) is recorded
    sent = stack.fake.requests[0].headers["traceparent"]  # recorded or not, a context goes on
    assert sampled(sent) is recorded and CLIENT_SPAN_ID not in sent
    assert sent.startswith(f"00-{TRACE_ID}-") is bool(incoming)


async def test_no_configured_secret_reaches_a_span_name_or_attribute(
    traced: TracedFactory, exporter: KeptSpans
) -> None:
    provider_key = "canary-tracing-provider-key-4c1e9a"
    collector_token = "canary-tracing-collector-token-7b2d"
    stack = await traced(
        tracing={"headers": {"authorization": f"Bearer {collector_token}"}},
        provider_settings={"openai-up": {"api_key": provider_key}},
    )
    # A client that puts the proxy's secrets where spans quote the request: the model name
    # (forwarded as given by the catch-all group) and the request id.
    await ask(stack, model=f"gpt-{provider_key}", extra_headers={"x-request-id": collector_token})
    spans = exporter
    assert len(spans) == 2
    texts = [span.name for span in spans]
    texts += [str(value) for span in spans for value in attributes(span).values()]
    assert not [text for text in texts if provider_key in text or collector_token in text]
    assert one(of_kind(spans, SERVER)).name == f"chat gpt-{MASK}"
    assert attributes(one(of_kind(spans, SERVER)))["edgeproxy.request_id"] == MASK


async def test_a_server_error_marks_the_request_span_and_a_client_error_does_not(
    traced: TracedFactory, exporter: KeptSpans
) -> None:
    stack = await traced()
    stack.fake.script("chat", Fail(500), Fail(400))
    for _ in range(2):
        with pytest.raises(openai.APIStatusError):
            await ask(stack)
    failed, refused = sorted(of_kind(exporter, SERVER), key=started)
    assert attributes(failed)["error.type"] == "500"
    assert failed.status == ERROR
    assert attributes(refused)["http.response.status_code"] == 400
    assert "error.type" not in attributes(refused)
    assert refused.status == UNSET


async def test_an_attempt_that_got_no_http_answer_carries_the_proxys_error_code(
    traced: TracedFactory, exporter: KeptSpans
) -> None:
    closed = free_port()  # nothing listens there: the connection is refused
    stack = await traced(
        provider_settings={"openai-up": {"base_url": f"http://127.0.0.1:{closed}/v1"}}
    )
    with pytest.raises(openai.APIStatusError):
        await ask(stack)
    client = one(of_kind(exporter, CLIENT))
    assert attributes(client)["error.type"] == "upstream_unreachable"
    assert "http.response.status_code" not in attributes(client)
    assert attributes(client)["server.port"] == closed


async def test_a_hedge_and_the_attempt_it_overtook_each_have_a_client_span(
    exporter: KeptSpans,
) -> None:
    r = rig({"m": in_order("a", "b", hedge_after="10ms")})
    r.script("a", "hang")
    tracer = seam.build_tracer(TracingSettings(enabled=True), Redactor(()), exporter)
    assert tracer is not None
    payload = {"model": "m", "messages": MESSAGES}
    exchange = Exchange(
        request_id="r",
        operation=Operation.CHAT,
        headers={},
        body=orjson.dumps(payload),
        payload=payload,
        model="m",
        stream=False,
        started=time.monotonic(),
    )
    trace = exchange.trace = tracer.begin(exchange)
    reply = await r.pipeline.run(exchange)
    assert served_by(reply) == "b"
    reply.close()
    exchange.status = 200
    exchange.settle(r.clock())
    trace.end(exchange)
    spans = exporter
    overtaken, hedge = sorted(of_kind(spans, CLIENT), key=started)
    assert attributes(overtaken)["edgeproxy.provider"] == "a"
    assert attributes(overtaken)["error.type"] == "CancelledError"
    assert attributes(hedge)["edgeproxy.provider"] == "b"
    assert "error.type" not in attributes(hedge)
    await tracer.close()


class Records(list[SpanRecord]):
    """A sink keeping the records themselves, as the exporter's buffer holds them."""

    def add(self, record: SpanRecord) -> None:
        self.append(record)

    def close(self) -> None:
        pass


def test_a_requests_span_records_hold_its_values_not_its_exchange() -> None:
    """Records wait for the exporter's next batch: they must not keep the request's bodies."""
    records = Records()
    tracer = seam.build_tracer(TracingSettings(enabled=True), Redactor(()), records)
    assert tracer is not None
    exchange = Exchange(
        request_id="r",
        operation=Operation.CHAT,
        headers={},
        body=b'{"model": "m", "messages": []}',
        payload={"model": "m", "messages": []},
        model="m",
        stream=False,
        started=time.monotonic(),
    )
    trace = tracer.begin(exchange)
    trace.cache_lookup()(exchange)
    trace.attempt(None, "m").answered(None, False)  # type: ignore[arg-type]
    exchange.status = 502
    trace.end(exchange)
    assert len(records) == 3
    for record in records:
        held = gc.get_referents(record)
        assert not [value for value in held if value is exchange or value is exchange.body]
        assert not [value for value in held if value is exchange.payload]


async def test_with_tracing_off_a_clients_trace_context_goes_upstream_as_it_is(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack()
    headers = {"traceparent": f"00-{TRACE_ID}-{CLIENT_SPAN_ID}-01", "tracestate": "v=1"}
    await ask(stack, extra_headers=headers)
    sent = stack.fake.requests[0].headers
    assert (sent["traceparent"], sent["tracestate"]) == (headers["traceparent"], "v=1")


@contextmanager
def tracing_calls() -> Iterator[list[str]]:
    """The functions of the tracing modules called inside the block (on this thread, the
    event loop's)."""
    called: list[str] = []

    def profile(frame: FrameType, event: str, _: object) -> None:
        if event == "call" and frame.f_code.co_filename in TRACING_CODE:
            called.append(frame.f_code.co_name)

    sys.setprofile(profile)
    try:
        yield called
    finally:
        sys.setprofile(None)


async def test_with_tracing_off_the_request_path_calls_no_tracing_code(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(cache={"enabled": True})
    with tracing_calls() as called:
        await ask(stack)
    assert stack.fake.calls["chat"] == 1
    assert called == []


async def test_the_probe_sees_tracing_code_when_tracing_is_on(traced: TracedFactory) -> None:
    """The control for the test above: the same probe, tracing on."""
    stack = await traced(cache={"enabled": True})
    with tracing_calls() as called:
        await ask(stack)
    assert {"begin", "cache_lookup", "attempt", "answered", "end"} <= set(called)


LOADED = (
    "import sys\n"
    "from edgeproxy.app import ProxyServer\n"
    "from edgeproxy.config import parse\n"
    "ProxyServer(parse({{'admin': {{'enabled': False}}, 'cache': {{'enabled': True}},"
    " 'telemetry': {{'tracing': {{'enabled': {enabled}}}}}}}, {{}}))\n"
    "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] == 'opentelemetry'"
    " or m in {modules})))\n"
)
TRACING_MODULES = {
    f"edgeproxy.telemetry.{name}"
    for name in (
        "request_spans",
        "span_attributes",
        "spans",
        "w3c",
        "span_export",
        "otlp_json",
        "otlp_protobuf",
    )
}


def loaded_modules(enabled: bool) -> list[str]:
    program = LOADED.format(enabled=enabled, modules=sorted(TRACING_MODULES))
    output = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True
    ).stdout
    return output.split()


def test_with_tracing_off_no_tracing_module_is_loaded() -> None:
    assert loaded_modules(enabled=False) == []


def test_with_tracing_on_the_proxys_tracing_is_loaded_and_no_opentelemetry_package() -> None:
    """The control for the test above, and the proof that tracing needs no extra."""
    assert loaded_modules(enabled=True) == sorted(TRACING_MODULES)


@pytest.mark.parametrize(
    ("tracing_section", "problem"),
    [
        ({"sample_ratio": 1.5}, "telemetry.tracing.sample_ratio: expected a number from 0 to 1"),
        ({"endpoint": "collector:4318"}, "telemetry.tracing.endpoint: expected an http://"),
        ({"service_name": ""}, "telemetry.tracing.service_name: expected a non-empty string"),
        ({"headers": {"bad name": "x"}}, "telemetry.tracing.headers: 'bad name' is not an"),
        ({"exporter": "grpc"}, "telemetry.tracing.exporter: unknown field"),
        ({"protocol": "grpc"}, "telemetry.tracing.protocol: expected one of"),
    ],
)
def test_tracing_settings_are_checked_at_load(
    tracing_section: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        parse({"telemetry": {"tracing": tracing_section}}, {})
    assert any(line.startswith(problem) for line in raised.value.problems), raised.value


POD_RESOURCE = "k8s.pod.name=app-7f9c,k8s.namespace.name=team%20a,service.name=from-attributes"


@pytest.mark.parametrize(
    ("tracing_section", "env", "service", "resource"),
    [
        ({}, {}, "edgeproxy", {}),
        (
            {},
            {"OTEL_RESOURCE_ATTRIBUTES": POD_RESOURCE},
            "from-attributes",
            {"k8s.pod.name": "app-7f9c", "k8s.namespace.name": "team a"},
        ),
        (
            {},
            {"OTEL_RESOURCE_ATTRIBUTES": POD_RESOURCE, "OTEL_SERVICE_NAME": "from-env"},
            "from-env",
            {"k8s.pod.name": "app-7f9c", "k8s.namespace.name": "team a"},
        ),
        (
            {"service_name": "from-file", "resource_attributes": {"k8s.pod.name": "mine"}},
            {"OTEL_RESOURCE_ATTRIBUTES": POD_RESOURCE, "OTEL_SERVICE_NAME": "from-env"},
            "from-file",
            {"k8s.pod.name": "mine", "k8s.namespace.name": "team a"},
        ),
        (
            {"resource_attributes": {"service.name": "from-file-attributes"}},
            {"OTEL_SERVICE_NAME": "from-env"},
            "from-file-attributes",
            {},
        ),
    ],
)
def test_the_spans_resource_comes_from_the_file_over_opentelemetrys_environment_variables(
    tracing_section: dict[str, Any], env: dict[str, str], service: str, resource: dict[str, str]
) -> None:
    config = parse({"telemetry": {"tracing": {"enabled": True, **tracing_section}}}, env)
    tracing = config.telemetry.tracing
    assert (tracing.service_name, dict(tracing.resource_attributes)) == (service, resource)


@pytest.mark.parametrize("attributes", ["k8s.pod.name", "=app", "k8s.pod.name=%ff"])
def test_a_malformed_resource_variable_is_refused_at_load_when_tracing_is_on(
    attributes: str,
) -> None:
    env = {"OTEL_RESOURCE_ATTRIBUTES": attributes}
    with pytest.raises(ConfigError) as raised:
        parse({"telemetry": {"tracing": {"enabled": True}}}, env)
    assert raised.value.problems[0].startswith("OTEL_RESOURCE_ATTRIBUTES: expected key=value")
    parse({"telemetry": {"tracing": {"enabled": False}}}, env)  # off: not read at all


def test_the_collectors_headers_are_secrets() -> None:
    token = "canary-collector-header-3e8f"
    config = parse(
        {"telemetry": {"tracing": {"headers": {"Authorization": "Bearer ${OTLP_TOKEN}"}}}},
        {"OTLP_TOKEN": token},
    )
    assert f"Bearer {token}" in config.secrets()
    assert token not in repr(config)
    ((name, _),) = config.telemetry.tracing.headers
    assert name == "authorization"


@pytest.mark.parametrize("protocol", ["http/protobuf", "http/json"])
async def test_spans_are_exported_over_otlp_http_with_the_configured_headers(
    protocol: str,
) -> None:
    fake = FakeUpstream(seed=0)
    await fake.start()
    async with receiver() as collector:
        tracing_section = {
            "enabled": True,
            "endpoint": collector.url,
            "service_name": "edgeproxy-test",
            "resource_attributes": {"k8s.pod.name": "app-7f9c"},
            "protocol": protocol,
            "headers": {"authorization": "Bearer collector-token-1f2e"},
        }
        proxy = ProxyServer(
            proxy_config(fake.url, sections={"telemetry": {"tracing": tracing_section}})
        )
        await proxy.start()
        try:
            await ask(Stack(proxy, fake))
        finally:
            await proxy.stop()  # flushes the spans held
            await fake.close()
    assert {post.authorization for post in collector.posts} == {"Bearer collector-token-1f2e"}
    assert {post.content_type for post in collector.posts} == {PROTOCOL_CONTENT_TYPES[protocol]}
    for post in collector.posts:
        for resource_spans in post.export.resource_spans:
            service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            assert service["service.name"] == "edgeproxy-test"
            assert service["k8s.pod.name"] == "app-7f9c"
            assert [scope.scope.name for scope in resource_spans.scope_spans] == ["edgeproxy"]
    spans = {span.name: span for span in collector.spans}
    assert sorted(spans) == ["chat gpt-4o", "chat gpt-4o-2024-08-06"]
    server, client = spans["chat gpt-4o"], spans["chat gpt-4o-2024-08-06"]
    assert client.parent_span_id == server.span_id and client.trace_id == server.trace_id
    assert (server.kind, client.kind) == (SERVER, CLIENT)
    sent = fake.requests[0].headers["traceparent"]
    assert ids(sent) == (int(client.trace_id.hex(), 16), int(client.span_id.hex(), 16))
    assert sent.endswith("-03")  # sampled, its trace id random
