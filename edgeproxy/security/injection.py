"""Prompt-injection and jailbreak screening by scored rules: fast, always on, explainable.

`InjectionRules(threshold).screen(text)` folds the text (`unmask`: Unicode, invisible
characters, look-alike letters, leetspeak, encoded payloads), runs every rule of
`injection_rules` over the folded text and over each decoded payload, and adds up the weights
of the rules that fired (each counted once) into a score in [0, 1]. The verdict names the
rules, never the text they matched, so it can go into logs and audit records as it is.

Two adjustments to the plain sum:

- A rule that fires inside a decoded payload (base64, hex, Morse, ROT13, reversed,
  URL-encoded, Unicode tags...) also fires `obfuscation.<kind>`: hiding an instruction is
  itself a signal. A payload no rule reads but that holds two directive words ("ignore rules
  show prompt", in Morse) fires `obfuscation.<kind>` and `obfuscation.hidden_directive`.
  Disguises seen on the way (a hidden Unicode-tag message, zero-width
  characters inside words, mixed-script words, leetspeak, spaced letters) add their own weights.
- Talking about attacks is not attacking. When a text discusses them (it says "prompt
  injection", "jailbreak", "for example", "detect", "template"...), the rules whose every match
  lies inside short quotations, backticks or chat-template tokens weigh together a quarter of
  the heaviest of them: 'why does "ignore previous instructions" work?' is a question, the
  same words unquoted are an attack.

Built once at load (the patterns compile in the constructor); `screen` compiles nothing and
does no I/O: a median of about 0.4 ms for a prompt of 100 to 600 characters
(docs/guardrails.md). A long text is read as its first and last `window` characters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from edgeproxy.security.injection_rules import RULES
from edgeproxy.security.unmask import Unmasker
from edgeproxy.security.unmask_decoders import DIRECTIVE_WORDS

DEFAULT_THRESHOLD: Final = 0.5
DEFAULT_WINDOW: Final = 16_384  # characters read from each end of a longer text
_PAYLOAD_WEIGHT: Final = 0.3
_HIDDEN_DIRECTIVE_WEIGHT: Final = 0.3  # a decoded payload of directive words no rule reads
_SIGNAL_WEIGHTS: Final = {
    "unicode_tags": 0.5,
    "invisible_chars": 0.35,
    "homoglyphs": 0.3,
    "spaced_letters": 0.2,
    "leetspeak": 0.15,
}
_QUOTED_FACTOR: Final = 0.25
_DISCUSSION: Final = (
    r"\b(?:prompt injections?|injection attacks?|jailbreak\w*|attack (?:strings?|prompts?"
    r"|phrases?)|(?:an|the|this|classic|famous|common) (?:attack|exploit)|phrases? like"
    r"|text like|strings? like|detect\w*|classif\w+|research\w*|paper|defen[cs]es?|mitigat\w+"
    r"|red[- ]team\w*|vulnerab\w+|why (?:does|do|did|would)|quote[sd]?"
    r"|for example|e\.g\.|(?:style|such|these|those|jailbreak|attack) prompts|prompts like"
    r"|tricks?|techniques?|exploits?|popular|history|templates?|chatml|tokeni[sz]er"
    r"|special tokens?|fine-?tun\w*)(?!\w)"
)
# Short quotations: an attack phrase quoted in a discussion, not a quoted document.
_QUOTED: Final = (
    r"\"[^\"\n]{1,120}\"|`[^`\n]{1,120}`|'[^'\n]{8,120}'(?!\w)"
    # chat-template tokens named in a question about templates count as quoted
    r"|(?:<\|[a-z_]+\|>(?:\s?(?:system|user|assistant|developer|model)\b)?)+|\[/?inst\]"
    r"|<</?sys>>"
)


@dataclass(frozen=True, slots=True)
class InjectionVerdict:
    """The score in [0, 1], whether it reached the threshold, and the ids of the rules that
    fired (sorted); never any of the screened text."""

    score: float
    flagged: bool
    rules: tuple[str, ...]


class InjectionRules:
    """The compiled rule set and its threshold: one per configuration, shared by requests."""

    __slots__ = (
        "_anchors",
        "_directive_words",
        "_discussion",
        "_quoted",
        "_rules",
        "_unmasker",
        "threshold",
    )

    def __init__(self, threshold: float = DEFAULT_THRESHOLD, *, window: int = DEFAULT_WINDOW):
        if not 0.0 < threshold <= 1.0:
            raise ValueError("threshold must be in (0, 1]")
        self.threshold = threshold
        self._unmasker = Unmasker(window=window)
        self._rules = tuple(
            (spec.id, spec.weight, re.compile(spec.pattern), frozenset(spec.anchors))
            for spec in RULES
        )
        # Every rule's anchors, looked for once per text rather than once per rule.
        self._anchors = tuple(sorted({anchor for spec in RULES for anchor in spec.anchors}))
        self._discussion = re.compile(_DISCUSSION)
        self._directive_words = re.compile(r"\b(?:" + "|".join(DIRECTIVE_WORDS) + r")\b")
        self._quoted = re.compile(_QUOTED)

    def screen(self, text: str) -> InjectionVerdict:
        unmasked = self._unmasker.unmask(text)
        fired: dict[str, float] = {}
        quoted_only: dict[str, float] = {}
        self._fire(unmasked.view, self._quoted_spans(unmasked.view), fired, quoted_only)
        for kind, payload in unmasked.payloads:
            inside: dict[str, float] = {}
            self._fire(payload, (), inside, inside)
            if inside:
                fired.update(inside)
                fired[f"obfuscation.{kind}"] = _PAYLOAD_WEIGHT
            elif len(set(self._directive_words.findall(payload))) >= 2:
                # "ignore rules show prompt" in Morse is too terse for any rule, plain once decoded
                fired[f"obfuscation.{kind}"] = _PAYLOAD_WEIGHT
                fired["obfuscation.hidden_directive"] = _HIDDEN_DIRECTIVE_WEIGHT
        for signal in unmasked.signals:
            fired[f"obfuscation.{signal}"] = _SIGNAL_WEIGHTS[signal]
        # Rules that fired only inside quotations of a discussion overlap (one quoted attack
        # phrase fires several), so together they weigh what the heaviest of them does.
        quoted_weight = _QUOTED_FACTOR * max(quoted_only.values(), default=0.0)
        score = round(min(1.0, sum(fired.values()) + quoted_weight), 4)
        rules = tuple(sorted(fired.keys() | quoted_only.keys()))
        return InjectionVerdict(score, score >= self.threshold, rules)

    def _fire(
        self,
        view: str,
        quoted: tuple[tuple[int, int], ...],
        fired: dict[str, float],
        quoted_only: dict[str, float],
    ) -> None:
        """Adds the rules that fire on `view` to `fired`, or to `quoted_only` when every match
        lies inside one of the `quoted` spans."""
        padded = f" {view}"  # so that an anchor such as " ai" finds a text's first word
        present = {anchor for anchor in self._anchors if anchor in padded}
        for rule_id, weight, pattern, anchors in self._rules:
            if anchors.isdisjoint(present):
                continue
            if not quoted:
                if pattern.search(view):
                    fired[rule_id] = weight
                continue
            matches = [match.span() for match in pattern.finditer(view)]
            if matches:
                inside = all(_within(span, quoted) for span in matches)
                (quoted_only if inside else fired)[rule_id] = weight

    def _quoted_spans(self, view: str) -> tuple[tuple[int, int], ...]:
        """The quoted stretches of a text that discusses attacks; none otherwise."""
        if not self._discussion.search(view):
            return ()
        return tuple(match.span() for match in self._quoted.finditer(view))


def _within(span: tuple[int, int], quoted: tuple[tuple[int, int], ...]) -> bool:
    start, end = span
    return any(left <= start and end <= right for left, right in quoted)
