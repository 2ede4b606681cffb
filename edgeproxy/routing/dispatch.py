"""Sending a request to a model group: choice, retries, failover, fallback groups and hedging.

The order of trying, for one request:

1. the deployments of its group, by the group's strategy, each at most once while untried
   ones are available (moving to another deployment costs no wait);
2. a deployment already tried, after an exponential, fully jittered backoff (or the provider's
   longer retry-after), when the group has nothing else;
3. the group's fallback groups in order (or, when the prompt is too long for the group, its
   context fallbacks), each with its own attempt cap;
4. the last failure, relayed to the client as the provider worded it; or, when nothing was
   available at all, an error with the earliest time a deployment reopens as retry-after: a
   429 when every deployment that could serve the request is held back by its provider's rate
   limit (a 429's retry-after, still running), as a provider would have answered; else a 503
   (a breaker open past any retry-after, local ceilings reached, or a mix of reasons).

A deployment whose breaker is open, which is cooling down after a retry-after, or which is at
its local ceilings is not chosen, so a dead deployment costs nothing once its breaker opens.
Calling a deployment this request already called is a retry, and so is a hedge: each needs a
place in the group's retry budget (Envoy's: retries in flight at most a fraction of requests in
flight); with the budget spent, the failure goes back to the client instead of adding to an
outage. Moving on to a deployment not yet called is failover and needs no place.

An attempt succeeds when the answer's headers are in and, for a stream, its first chunk too:
until then nothing has reached the client, so a failure can still move on. After that it is
the client's, and a failure is a final SSE error event (see handlers).

With tracing on, each attempt that calls a provider (every retry and hedge) has a span of its
own (`Exchange.trace`, telemetry/request_spans.py), whose W3C context the provider sends
upstream.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Set
from dataclasses import dataclass, replace

import orjson

from edgeproxy import errors
from edgeproxy.dialects.neutral import ChatRequest, EmbeddingRequest
from edgeproxy.dialects.openai_responses import is_answer_id
from edgeproxy.dialects.translation import Translator
from edgeproxy.dialects.upstream import retry_after
from edgeproxy.errors import ProxyError
from edgeproxy.exchange import AttemptTrace, Exchange, Reply
from edgeproxy.operations import Operation
from edgeproxy.providers.base import OutboundRequest, Upstream
from edgeproxy.routing.affinity import ResponseAffinity
from edgeproxy.routing.health import Lease
from edgeproxy.routing.needs import exceeds_context, missing, why_unfit
from edgeproxy.routing.retry import RetryBudget, wait_before_retry
from edgeproxy.routing.router import Deployment, ModelGroup

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
# How a stream that fails at once begins, in OpenAI's and Anthropic's SSE.
_ERROR_EVENTS = (b'data: {"error"', b"event: error")


class Primed:
    """A stream whose first chunk has been read (to know the attempt worked) and is replayed."""

    __slots__ = ("_first", "_inner")

    def __init__(self, inner: Upstream, first: bytes) -> None:
        self._inner = inner
        self._first: bytes | None = first

    @property
    def headers(self) -> MutableMapping[str, str]:
        return self._inner.headers

    @property
    def status(self) -> int:
        return self._inner.status

    @property
    def is_event_stream(self) -> bool:
        return self._inner.is_event_stream

    async def read(self) -> bytes:
        return await self._inner.read()

    async def next_chunk(self) -> bytes:
        first = self._first
        if first is not None:
            self._first = None
            return first
        return await self._inner.next_chunk()

    def close(self) -> None:
        self._inner.close()


@dataclass(slots=True)
class Outcome:
    """What one attempt came to. `reply` is None when the deployment could not be taken."""

    reply: Reply | None
    success: bool = False
    retryable: bool = False
    refused: bool = False  # the request could not be shaped for this deployment (a 400)
    context_exceeded: bool = False
    retry_after: float | None = None
    # A successful attempt's place at its deployment, and what `prepare` decided for it. Kept
    # here, not read from the exchange: attempts share the request's exchange, which holds a
    # later attempt's state by the time an earlier failure may be the one relayed.
    lease: Lease | None = None
    shape: Shape | None = None

    def discard(self, now: float) -> None:
        """Let go of an answer that will not be relayed (its connection goes back or closes)."""
        if self.reply is not None and not isinstance(self.reply, ProxyError):
            self.reply.close()
        lease = self.lease
        if lease is not None:
            lease.release(now)


# The per-attempt fields of an exchange: deployment, translator, neutral, dropped, upstream_body.
Shape = tuple[
    Deployment | None, Translator | None, ChatRequest | EmbeddingRequest | None, list[str], bytes
]


def shape_of(exchange: Exchange) -> Shape:
    return (
        exchange.deployment,
        exchange.translator,
        exchange.neutral,
        exchange.dropped,
        exchange.upstream_body,
    )


def prepare(exchange: Exchange, deployment: Deployment) -> ProxyError | None:
    """Shape the upstream body for `deployment`: its model name mapped in (same dialect) or
    the request translated for its provider; a 400 for what cannot be sent there."""
    exchange.deployment = deployment
    translator = deployment.routes[exchange.operation]
    exchange.translator = translator
    if translator is not None:
        try:
            exchange.neutral, exchange.upstream_body, exchange.dropped = translator.request(
                exchange.payload, exchange.upstream_model
            )
        except ProxyError as err:
            return err
        return None
    exchange.neutral, exchange.dropped = None, []
    upstream_model = deployment.model
    if exchange.injects_usage:  # the caller's limits or budget need the stream's usage
        options = exchange.payload.get("stream_options")
        asked = {**(options if isinstance(options, dict) else {}), "include_usage": True}
        model = upstream_model or exchange.model
        exchange.upstream_body = orjson.dumps(
            {**exchange.payload, "model": model, "stream_options": asked}
        )
    elif upstream_model is None or upstream_model == exchange.model:
        exchange.upstream_body = exchange.body
    else:
        exchange.upstream_body = orjson.dumps({**exchange.payload, "model": upstream_model})
    return None


def outbound(
    exchange: Exchange, deployment: Deployment, trace_context: Mapping[str, str] | None = None
) -> OutboundRequest:
    """The attempt `prepare` shaped, as the provider is given it (with its span's context when
    tracing is on)."""
    total = deployment.provider.config.timeouts.total
    return OutboundRequest(
        request_id=exchange.request_id,
        operation=exchange.operation,
        model=exchange.upstream_model,
        body=exchange.upstream_body,
        stream=exchange.stream,
        client_headers=exchange.headers if exchange.translator is None else None,
        payload=exchange.payload,
        neutral=exchange.neutral,
        deadline=None if total is None else exchange.started + total,
        trace_context=trace_context,
    )


class Dispatch:
    """The terminal stage: the upstream answer to relay, or the error to render."""

    __slots__ = ("_clock", "_rng", "_sleep", "affinity", "hedges")

    def __init__(
        self,
        clock: Clock,
        rng: Callable[[], float],
        sleep: Sleep,
        affinity: ResponseAffinity | None = None,
    ) -> None:
        self.affinity = affinity or ResponseAffinity()  # a reload hands the running one on
        self._clock = clock
        self._rng = rng
        self._sleep = sleep
        self.hedges = 0

    async def __call__(self, exchange: Exchange) -> Reply:
        primary = exchange.group
        assert primary is not None, "route runs before dispatch"
        primary.budget.enter()
        began = self._clock()
        try:
            return await self._dispatch(exchange, primary)
        finally:
            primary.budget.leave()
            exchange.upstream_wait += self._clock() - began  # attempts, backoff, hedges

    async def _dispatch(self, exchange: Exchange, primary: ModelGroup) -> Reply:
        pinned = None
        if exchange.operation is Operation.RESPONSES:
            pinned = await self._responses_plan(exchange, primary)
        plan, unfit = pinned or self._plan(exchange, primary)
        if unfit is not None:
            return unfit
        last: Outcome | None = None
        switched = False
        called: set[Deployment] = set()
        considered: list[ModelGroup] = []
        while plan:
            group = plan.pop(0)
            considered.append(group)
            outcome = await self._group(exchange, group, primary.budget, called, not plan)
            if outcome is None:
                continue
            if outcome.success or not outcome.retryable:
                if last is not None:
                    last.discard(self._clock())
                return self._adopt(exchange, outcome)
            last = self._keep(last, outcome)
            if outcome.context_exceeded and not switched and primary.context_fallbacks:
                plan, switched = list(primary.context_fallbacks), True
            elif outcome.context_exceeded:
                break
        if last is None:
            return self._unavailable(exchange, considered)
        return self._adopt(exchange, last)

    def _unavailable(self, exchange: Exchange, groups: list[ModelGroup]) -> ProxyError:
        """Nothing could be tried: a 429 when only providers' rate limits keep every deployment
        that fits the request out, else a 503; retry-after when the first one reopens."""
        now = self._clock()
        fitting = [d for g in groups for d in g.fitting(exchange.operation, exchange.needs)]
        wait = min(d.health.breaker.available_at(now) for d in fitting) - now
        if all(d.health.rate_limited(now) for d in fitting):
            return errors.rate_limited_everywhere(exchange.model, wait)
        return errors.no_deployment_available(exchange.model, wait)

    async def _responses_plan(
        self, exchange: Exchange, primary: ModelGroup
    ) -> tuple[list[ModelGroup], ProxyError | None] | None:
        """What the Responses API's provider-kept state decides for a request: a follow-up
        of an answer a deployment of its groups gave goes to that deployment alone (see
        `_pinned`); one of an answer given to another key is refused, as if the answer did not
        exist; so is a request to run in the background while its caller's budget or token
        limits await its usage (which would come only with a later retrieval, which charges
        nothing). None: the request is planned as any is."""
        charges = exchange.charges or ()
        metered = any(charge.metered for charge in charges)
        if metered and exchange.payload.get("background") is True:
            return [], errors.background_unmetered()
        answer_id = exchange.payload.get("previous_response_id")
        if not isinstance(answer_id, str) or not is_answer_id(answer_id):
            return None
        holder = await self.affinity.find(answer_id)
        if holder is None:
            return None
        caller = exchange.caller
        if holder.key is not None and (caller is None or caller.id != holder.key):
            return [], errors.previous_response_not_found(answer_id)
        return self._pinned(exchange, primary, holder.deployment)

    def _pinned(
        self, exchange: Exchange, primary: ModelGroup, owner: str
    ) -> tuple[list[ModelGroup], None] | None:
        """The group of `primary`'s plan holding deployment `owner`, the request pinned to
        it (routing/affinity.py); None when none does (a reload removed it)."""
        for group in (primary, *primary.fallbacks):
            for deployment in group.deployments:
                if deployment.name == owner:
                    exchange.pinned = deployment
                    return [group], None
        return None

    def _plan(
        self, exchange: Exchange, primary: ModelGroup
    ) -> tuple[list[ModelGroup], ProxyError | None]:
        """The groups to try in order, leaving out those that cannot take this request."""
        operation, needs = exchange.operation, exchange.needs
        groups = [primary, *primary.fallbacks]
        if needs is None and operation in primary.operations:
            return groups, None
        plan = [g for g in groups if g.fitting(operation, needs)]
        if plan and plan[0] is primary:
            return plan, None
        if needs is not None and primary.fitting(operation, None):
            configs = [d.config for d in primary.deployments if operation in d.routes]
            too_long = all(
                exceeds_context(needs, c.context_window) and not missing(needs, c.capabilities)
                for c in configs
            )
            if too_long and primary.context_fallbacks:
                plan = [g for g in primary.context_fallbacks if g.fitting(operation, needs)]
            if plan:
                return plan, None
            reasons = dict.fromkeys(
                why_unfit(needs, c.capabilities, c.context_window) for c in configs
            )
            reason = " / ".join(reasons)
            return [], errors.unfit_request(exchange.model, reason, context=too_long)
        if plan:
            return plan, None
        deployment = primary.deployments[0]
        path = exchange.operation.path
        return [], errors.unsupported_route(exchange.model, deployment.provider.name, path)

    async def _group(
        self,
        exchange: Exchange,
        group: ModelGroup,
        budget: RetryBudget,
        called: set[Deployment],
        last_resort: bool,
    ) -> Outcome | None:
        """Up to the group's attempt cap; its last failure, or None if nothing was tried.

        Calling a deployment this request has already called is a retry and needs a place in
        the budget; moving on to one it has not called is failover, which adds no load to the
        deployment that failed (its breaker bounds what it costs), so it needs none."""
        tried: set[Deployment] = set()
        refused: set[Deployment] = set()
        last: Outcome | None = None
        retries = 0
        for _ in range(group.retry.max_attempts):
            deployment = self._choose(exchange, group, tried)  # refused ones are tried too
            if deployment is None and tried - refused and last is not None:
                retries += 1
                deployment = await self._wait_for(exchange, group, refused, retries, last_resort)
            if deployment is None:
                return last
            retry = deployment in called
            if retry and not budget.try_acquire():
                return last
            try:
                outcome = await self._attempt_or_hedge(exchange, group, deployment, tried, budget)
            finally:
                if retry:
                    budget.release()
            tried.add(deployment)
            if outcome.reply is None:
                continue
            if outcome.refused:
                refused.add(deployment)
            else:
                called.add(deployment)
            if outcome.success or not outcome.retryable or outcome.context_exceeded:
                if last is not None:
                    last.discard(self._clock())
                return outcome
            last = self._keep(last, outcome)
        return last

    def _keep(self, last: Outcome | None, failure: Outcome) -> Outcome:
        """The failure to relay if nothing succeeds: the newest, except that a provider's own
        failure is worth more to the client than a deployment refusing the request's shape
        (the other one is let go)."""
        if last is None:
            return failure
        if failure.refused and not last.refused:
            last, failure = failure, last
        last.discard(self._clock())
        return failure

    async def _wait_for(
        self,
        exchange: Exchange,
        group: ModelGroup,
        refused: set[Deployment],
        retries: int,
        last_resort: bool,
    ) -> Deployment | None:
        """A tried deployment again, after a backoff (or until its retry-after has passed);
        None when waiting is not worth it: another group can take over, or the wait would
        outlast `max_wait` or the request's deadline."""
        now = self._clock()
        again = self._choose(exchange, group, refused)
        cooling = None
        if again is None:
            if not last_resort:
                return None
            cooling = group.available_at(now) - now
        settings = group.retry
        wait = wait_before_retry(retries, settings, self._rng(), cooling, _remaining(exchange))
        if wait is None:
            return None
        await self._sleep(wait)
        return self._choose(exchange, group, refused)

    def _choose(
        self, exchange: Exchange, group: ModelGroup, exclude: Set[Deployment] = frozenset()
    ) -> Deployment | None:
        pinned = exchange.pinned
        if pinned is not None:
            usable = pinned not in exclude and pinned.health.available(self._clock())
            return pinned if usable else None
        return group.choose(
            exchange.strategy or group.strategy,
            self._clock(),
            self._rng,
            exchange.operation,
            needs=exchange.needs,
            exclude=exclude,
        )

    async def _attempt_or_hedge(
        self,
        exchange: Exchange,
        group: ModelGroup,
        deployment: Deployment,
        tried: set[Deployment],
        budget: RetryBudget,
    ) -> Outcome:
        if group.hedge_after is None:
            return await self._attempt(exchange, group, deployment, exchange)
        return await self._hedged(exchange, group, deployment, tried, budget)

    async def _hedged(
        self,
        exchange: Exchange,
        group: ModelGroup,
        first: Deployment,
        tried: set[Deployment],
        budget: RetryBudget,
    ) -> Outcome:
        """Race a second deployment when the first has not answered within `hedge_after`; the
        first success wins and the other attempt is cancelled. The second attempt is extra
        load like a retry, so it needs a place in the retry budget."""
        assert group.hedge_after is not None
        async with asyncio.TaskGroup() as tasks:
            lead = tasks.create_task(self._attempt(replace(exchange), group, first, exchange))
            done, _ = await asyncio.wait({lead}, timeout=group.hedge_after)
            if done:
                return lead.result()
            second = self._choose(exchange, group, tried | {first})
            if second is None or not budget.try_acquire():
                return await lead
            try:
                self.hedges += 1
                first.health.hedges += 1
                tried.add(second)
                hedge = tasks.create_task(self._attempt(replace(exchange), group, second, exchange))
                return await self._first_success({lead, hedge})
            finally:
                budget.release()

    async def _attempt(
        self, ex: Exchange, group: ModelGroup, deployment: Deployment, main: Exchange
    ) -> Outcome:
        """One upstream call on `ex` (the request's exchange, or a copy while hedging) to a
        deployment of `group`, whose retry statuses judge the answer."""
        health = deployment.health
        now = self._clock()
        tokens = ex.needs.prompt_tokens if ex.needs is not None else len(ex.body) // 4
        if not health.acquire(now, tokens):
            return Outcome(None)
        lease = ex.lease = Lease(health, now)
        refusal = prepare(ex, deployment)
        if refusal is not None:  # another deployment (another dialect) may take it
            lease.release(now)
            ex.lease = None
            return Outcome(refusal, retryable=True, refused=True, shape=shape_of(ex))
        main.attempts += 1
        span = None if ex.trace is None else ex.trace.attempt(deployment, ex.upstream_model)
        try:
            outcome = await self._send(ex, group.retry.on_status, deployment, lease, span)
        except BaseException as exc:
            lease.release(self._clock())
            ex.lease = None
            if span is not None:
                span.broke(exc)
            raise
        if span is not None:
            span.answered(outcome.reply, outcome.success)
        outcome.shape = shape_of(ex)
        if outcome.success:
            outcome.lease = lease
        else:
            lease.release(self._clock())
            ex.lease = None
        return outcome

    async def _send(
        self,
        ex: Exchange,
        on_status: Set[int],
        deployment: Deployment,
        lease: Lease,
        span: AttemptTrace | None,
    ) -> Outcome:
        context = None if span is None else span.headers
        try:
            upstream = await deployment.provider.send(outbound(ex, deployment, context))
        except ProxyError as err:
            if err.retryable:
                lease.failed(self._clock(), err.retry_after, rate_limited=err.status == 429)
            return Outcome(err, retryable=err.retryable, retry_after=err.retry_after)
        status = upstream.status
        primary = ex.group
        assert primary is not None
        if status in on_status:
            wait = retry_after(upstream.headers)
            lease.failed(self._clock(), wait, rate_limited=status == 429)
            return Outcome(upstream, retryable=True, retry_after=wait)
        if status == 400 and primary.context_fallbacks:
            return await self._maybe_too_long(ex, deployment, upstream, lease)
        if ex.stream and status == 200 and upstream.is_event_stream:
            try:
                first = await upstream.next_chunk()
            except ProxyError as err:
                upstream.close()
                lease.failed(self._clock())
                return Outcome(err, retryable=True)
            except BaseException:
                upstream.close()
                raise
            upstream = Primed(upstream, first)
            if first.startswith(_ERROR_EVENTS):  # accepted, then failed before any content
                lease.failed(self._clock())
                return Outcome(upstream, retryable=True)
        lease.succeeded(self._clock())
        return Outcome(upstream, success=True)

    async def _maybe_too_long(
        self, ex: Exchange, deployment: Deployment, upstream: Upstream, lease: Lease
    ) -> Outcome:
        """A 400 is the client's to see, unless it says the prompt outgrew this model's context
        window and the group has a larger-context fallback."""
        lease.succeeded(self._clock())
        codec = deployment.provider.chat_codec
        try:
            body = await upstream.read()
        except ProxyError as err:
            upstream.close()
            return Outcome(err)
        if codec is not None:
            said = codec.parse_error(400, upstream.headers, body, deployment.provider.name)
            if said.code == "context_length_exceeded":
                return Outcome(upstream, retryable=True, context_exceeded=True)
        return Outcome(upstream, success=True)

    async def _first_success(self, attempts: set[asyncio.Task[Outcome]]) -> Outcome:
        """The first successful outcome (the others cancelled or discarded), else the last
        failure that has an answer to relay."""
        pending = attempts
        result: Outcome | None = None
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                outcome = task.result()
                if _better(outcome, result):
                    if result is not None:
                        result.discard(self._clock())
                    result = outcome
                else:
                    outcome.discard(self._clock())
            if result is not None and result.success:
                for task in pending:
                    task.cancel()
                break
        assert result is not None
        return result

    def _adopt(self, exchange: Exchange, outcome: Outcome) -> Reply:
        """Make the chosen attempt's state the request's: it may have run on a copy (a hedge),
        or later attempts may have reshaped the exchange since."""
        if outcome.shape is not None:
            (
                exchange.deployment,
                exchange.translator,
                exchange.neutral,
                exchange.dropped,
                exchange.upstream_body,
            ) = outcome.shape
        exchange.lease = outcome.lease
        assert outcome.reply is not None
        return outcome.reply


def _better(outcome: Outcome, than: Outcome | None) -> bool:
    """Whether a hedged attempt's outcome should replace the one kept so far."""
    if than is None or outcome.success:
        return than is None or not than.success
    return not than.success and outcome.reply is not None


def _remaining(exchange: Exchange) -> float | None:
    """Seconds left before the request's deadline (the provider's total timeout)."""
    deployment = exchange.deployment
    total = None if deployment is None else deployment.provider.config.timeouts.total
    if total is None:
        return None
    return exchange.started + total - asyncio.get_running_loop().time()
