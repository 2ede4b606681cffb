"""Stage: screen a request against its guardrail policy before anything leaves the pod.

The policy is the caller's key's, else its route's, else the default; a request with none
passes untouched. In order, each rule in its mode (block: refuse with 400 `content_filter`;
redact: rewrite and go on; monitor: note and go on):
1. input limits: message count (400) and prompt characters (413);
2. the blocklist, on every text;
3. prompt-injection rules, on what users, tools and documents wrote (the system prompt is the
   operator's, the assistant's turns the model's);
4. personal data and secrets: refused, or replaced by placeholders that the answer gets back
   (`AnswerScreen`), or counted;
5. the Shield hook, sent the texts as they will leave (already redacted).
A rewritten request is encoded again, so routing, the cache key and the provider all see the
redacted text: the cache stores answers with placeholders, never another caller's values.

Every decision is counted by rule and action; those that act are written to the audit log,
with the rule and counts, never the text.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from edgeproxy import errors
from edgeproxy.background import Background
from edgeproxy.errors import ProxyError
from edgeproxy.exchange import Exchange, Reply
from edgeproxy.security.answer_screen import AnswerScreen
from edgeproxy.security.audit import AuditLog, DecisionCounter
from edgeproxy.security.blocklist import Blocklist
from edgeproxy.security.injection import InjectionRules
from edgeproxy.security.injection_classifier import InjectionClassifier
from edgeproxy.security.pii import Detector
from edgeproxy.security.pii_redaction import Redaction
from edgeproxy.security.prompt_text import TextSlot, request_texts
from edgeproxy.security.seen import CleanTexts
from edgeproxy.security.shield import ShieldClient, refusal

RULES = ("limits", "blocklist", "injection", "injection_classifier", "pii", "output", "shield")
# Texts the classifier reads per request, the last ones written (each costs an inference).
CLASSIFIED_TEXTS = 4
# Characters the injection rules read per request, newest texts first: 1.5 to 6 ms a KB of
# prose (bench/guard_stages.py), so a request's screening stays within tens of milliseconds.
INJECTION_BUDGET = 16 * 1024
# Of one longer text, the rules read its first and last INJECTION_WINDOW characters.
INJECTION_WINDOW = 8 * 1024
# Who wrote a text, as the Shield contract names roles: a document is what a user supplied.
_SHIELD_ROLES = {"document": "user"}
_SCREENED_FOR_INJECTION = frozenset({"user", "tool", "document"})
_ACTIONS = {"block": "block", "redact": "redact", "monitor": "flag"}


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    """One policy with everything it needs built: detectors, rules, its Shield client."""

    name: str
    max_messages: int | None = None
    max_prompt_chars: int | None = None
    blocklist: Blocklist | None = None
    blocklist_mode: str = "block"
    injection: InjectionRules | None = None
    injection_mode: str = "block"
    clean: CleanTexts = field(default_factory=CleanTexts)  # texts the rules passed
    classifier: InjectionClassifier | None = None
    pii: Detector | None = None
    pii_mode: str = "redact"
    output: Detector | None = None
    output_mode: str = "redact"
    shield: ShieldClient | None = None
    shield_output: bool = False  # the answer is sent to the guard too, once it is over


class Screen:
    """The screening stage, built once with every policy compiled."""

    __slots__ = (
        "_audit",
        "_background",
        "_decisions",
        "_default",
        "_policies",
        "_routes",
        "on_decision",
    )

    def __init__(
        self,
        policies: Mapping[str, CompiledPolicy],
        routes: Mapping[str, str],
        default: str | None,
        decisions: DecisionCounter,
        *,
        audit: AuditLog | None,
        background: Background,
    ) -> None:
        self._background = background
        self._policies = policies
        self._routes = {label: policies[name] for label, name in routes.items()}
        self._default = policies[default] if default is not None else None
        self._decisions = decisions
        self._audit = audit
        # Told of each decision that acts (telemetry events); None when nobody listens.
        self.on_decision: Callable[[str, str | None, str, str], None] | None = None

    def policy_for(self, exchange: Exchange) -> CompiledPolicy | None:
        """The caller's key's policy, else its route's, else the default. A key kept in Redis
        may name a policy a later configuration removed: the route's or default one applies."""
        caller = exchange.caller
        if caller is not None and caller.policy is not None:
            policy = self._policies.get(caller.policy)
            if policy is not None:
                return policy
        return self._routes.get(exchange.operation.label, self._default)

    async def __call__(self, exchange: Exchange) -> Reply | None:
        policy = self.policy_for(exchange)
        if policy is None:
            return None
        label = exchange.operation.label
        slots = list(request_texts(label, exchange.payload))
        refused = self._limits(exchange, policy, slots) or self._local_rules(
            exchange, policy, slots
        )
        if refused is not None:
            return refused
        if policy.shield is not None:
            refused = await self._shield(exchange, policy.shield, slots)
            if refused is not None:
                return refused
        return None

    def screen_stored(self, exchange: Exchange) -> None:
        """A stored answer read back later (stored_responses.py) is screened by the output
        rules that screened it when it was given. Its placeholders stay: the provider kept the
        answer as it made it, and what they stood for was the first request's alone."""
        policy = self.policy_for(exchange)
        if policy is not None and (policy.output is not None or policy.shield_output):
            self._screen_answer(exchange, policy, None)

    def _screen_answer(
        self, exchange: Exchange, policy: CompiledPolicy, redaction: Redaction | None
    ) -> None:
        """What the answer needs: placeholders back, output screened; its findings audited."""

        def report(found: Counter[str]) -> None:
            self._decide(
                exchange,
                "output",
                policy.output_mode,
                category=min(found),
                count=sum(found.values()),
            )

        observe = None
        if policy.shield is not None and policy.shield_output:
            observe = functools.partial(self._observe_answer, exchange, policy.shield)
        exchange.answer_screen = AnswerScreen(
            exchange.operation.label,
            redaction,
            policy.output,
            policy.output_mode,
            report,
            observe=observe,
        )

    def _observe_answer(self, exchange: Exchange, shield: ShieldClient, text: str) -> None:
        """The answer as the guard may read it (screened, placeholders kept), sent after it
        went out: the guard's verdict is counted and audited, never enforced, since the client
        has it already."""
        caller = exchange.caller
        check = shield.check(
            "output",
            request_id=exchange.request_id,
            key_id=caller.id if caller is not None else None,
            team=caller.team if caller is not None else None,
            model=exchange.model,
            operation=exchange.operation.label,
            texts=[("assistant", text)],
        )
        self._background.spawn("shield output", check)

    def _decide(
        self, exchange: Exchange, rule: str, mode: str, **fields: str | int | float | None
    ) -> None:
        action = _ACTIONS[mode]
        self._decisions.count(rule, action)
        if self.on_decision is not None:
            key_id = exchange.caller.id if exchange.caller is not None else None
            self.on_decision(exchange.request_id, key_id, rule, action)
        if self._audit is not None:
            caller = exchange.caller
            self._audit.record(
                exchange.request_id,
                caller.id if caller is not None else None,
                rule,
                action,
                team=caller.team if caller is not None else None,
                model=exchange.model[:128],
                operation=exchange.operation.label,
                **fields,
            )

    def _limits(
        self, exchange: Exchange, policy: CompiledPolicy, slots: Sequence[TextSlot]
    ) -> ProxyError | None:
        limit = policy.max_messages
        if limit is not None and _message_count(exchange.payload) > limit:
            self._decide(exchange, "limits", "block", category="messages")
            return errors.too_many_messages(limit)
        limit = policy.max_prompt_chars
        if limit is not None and sum(len(slot.get()) for slot in slots) > limit:
            self._decide(exchange, "limits", "block", category="prompt_chars")
            return errors.prompt_too_long(limit)
        return None

    def _local_rules(
        self, exchange: Exchange, policy: CompiledPolicy, slots: Sequence[TextSlot]
    ) -> ProxyError | None:
        rewritten = False
        if policy.blocklist is not None:
            refused, changed = self._blocklist(exchange, policy, policy.blocklist, slots)
            if refused is not None:
                return refused
            rewritten |= changed
        if policy.injection is not None:
            refused = self._injection(exchange, policy, policy.injection, slots)
            if refused is not None:
                return refused
        if policy.classifier is not None:
            self._classify(exchange, policy.classifier, slots)
        redaction = None
        if policy.pii is not None:
            refused, redaction = self._pii(exchange, policy, policy.pii, slots)
            if refused is not None:
                return refused
            rewritten |= redaction is not None
        if redaction is not None or policy.output is not None or policy.shield_output:
            self._screen_answer(exchange, policy, redaction)
        if rewritten:
            exchange.body = orjson.dumps(exchange.payload)
        return None

    def _blocklist(
        self,
        exchange: Exchange,
        policy: CompiledPolicy,
        blocklist: Blocklist,
        slots: Sequence[TextSlot],
    ) -> tuple[ProxyError | None, bool]:
        mode = policy.blocklist_mode
        if mode == "redact":
            total = 0
            for slot in slots:
                text, count = blocklist.redact(slot.get())
                if count:
                    slot.set(text)
                    total += count
            if total:
                self._decide(exchange, "blocklist", mode, count=total)
            return None, total > 0
        for slot in slots:
            rule = blocklist.find(slot.get())
            if rule is not None:
                self._decide(exchange, "blocklist", mode, category=rule)
                if mode == "block":
                    return errors.guardrail_blocked("blocklist"), False
                break
        return None, False

    def _injection(
        self,
        exchange: Exchange,
        policy: CompiledPolicy,
        rules: InjectionRules,
        slots: Sequence[TextSlot],
    ) -> ProxyError | None:
        """The newest texts first, each at most once while it stays clean (`CleanTexts`), and
        at most INJECTION_BUDGET characters of them per request: a long conversation's cost
        stays that of its new turns."""
        budget = INJECTION_BUDGET
        clean = policy.clean
        for slot in reversed(slots):
            if slot.role not in _SCREENED_FOR_INJECTION:
                continue
            text = slot.get()
            if text in clean:
                continue
            verdict = rules.screen(text)
            if verdict.flagged:
                category = verdict.rules[0] if verdict.rules else None
                score = round(verdict.score, 3)
                self._decide(
                    exchange, "injection", policy.injection_mode, category=category, score=score
                )
                if policy.injection_mode == "block":
                    return errors.guardrail_blocked("injection")
                return None
            clean.add(text)
            budget -= len(text)
            if budget <= 0:
                break
        return None

    def _classify(
        self, exchange: Exchange, classifier: InjectionClassifier, slots: Sequence[TextSlot]
    ) -> None:
        """The classifier's opinion, in the background (an inference is about 10 ms): a flag
        is counted and audited, never enforced (its false-positive rate is the rules' many
        times over; docs/guardrails.md)."""
        texts = [slot.get() for slot in slots if slot.role in _SCREENED_FOR_INJECTION]
        if texts:
            self._background.spawn(
                "injection classifier", self._classified(exchange, classifier, texts)
            )

    async def _classified(
        self, exchange: Exchange, classifier: InjectionClassifier, texts: list[str]
    ) -> None:
        for text in texts[-CLASSIFIED_TEXTS:]:
            score = await classifier.score(text)
            if score >= classifier.threshold:
                self._decide(exchange, "injection_classifier", "monitor", score=round(score, 3))
                return

    def _pii(
        self,
        exchange: Exchange,
        policy: CompiledPolicy,
        detector: Detector,
        slots: Sequence[TextSlot],
    ) -> tuple[ProxyError | None, Redaction | None]:
        """Personal data refused or counted, or replaced: the redaction, if anything was."""
        mode = policy.pii_mode
        if mode != "redact":
            found = [match.kind for slot in slots for match in detector.find(slot.get())]
            if found:
                self._decide(exchange, "pii", mode, category=found[0], count=len(found))
                if mode == "block":
                    return errors.guardrail_blocked("pii"), None
            return None, None
        redaction = Redaction(detector)
        for slot in slots:
            text = slot.get()
            redacted = redaction.redact(text, slot.json)
            if redacted is not text:
                slot.set(redacted)
        if not redaction:
            return None, None
        kinds = redaction.kinds_found
        self._decide(exchange, "pii", mode, category=min(kinds), count=redaction.count)
        return None, redaction

    async def _shield(
        self, exchange: Exchange, shield: ShieldClient, slots: Sequence[TextSlot]
    ) -> ProxyError | None:
        caller = exchange.caller
        texts = [(_SHIELD_ROLES.get(slot.role, slot.role), slot.get()) for slot in slots]
        verdict = await shield.check(
            "input",
            request_id=exchange.request_id,
            key_id=caller.id if caller is not None else None,
            team=caller.team if caller is not None else None,
            model=exchange.model,
            operation=exchange.operation.label,
            texts=texts,
        )
        if verdict.action == "redact" and verdict.redactions:
            for index, replacement in verdict.redactions:
                if 0 <= index < len(slots):
                    slots[index].set(replacement)
            exchange.body = orjson.dumps(exchange.payload)
        return refusal(verdict)


def _message_count(payload: dict[str, Any]) -> int:
    messages = payload.get("messages")
    if isinstance(messages, list):
        return len(messages)
    prompt = payload.get("prompt")
    return len(prompt) if isinstance(prompt, list) else 1
