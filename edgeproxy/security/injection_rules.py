"""The scored rules of prompt-injection screening: what each looks for, and what it weighs.

Each rule is an id (`family.what`), a weight and a pattern over the folded view of a text
(`edgeproxy.security.unmask`: case-folded, accents and disguises removed, spaces collapsed,
line breaks kept). A text's score is the sum of the weights of the rules that fire, so a rule
that is decisive on its own ("ignore all previous instructions") weighs at least the default
threshold (0.5), and a rule that is only suspicious ("stay in character", "from now on you",
a chat-template token, text addressed to "the AI") weighs less and flags only together with
another. The patterns are written for the shape of an attack rather than for its words: a verb
of setting aside, then something earlier or the model's own, then a kind of instruction, with
up to a few words between, so that paraphrases match and sentences that merely contain
"ignore" ("ignore the warnings in the log") or talk *about* system prompts do not.

Families: `override` (instruction override), `exfiltration` (the system prompt, secrets or the
conversation sent out), `roleplay` (personas, DAN, "developer mode", "no restrictions"),
`obfuscation` (asking for encoded instructions to be followed, or for answers that a filter
cannot read), `indirect` (instructions in documents and tool results addressed to the model,
hidden markup, actions to take unseen), `delimiter` (chat-template tokens, fake role headers
and closing tags), and `multilingual` (the commonest of the above in about 35 other
languages, in `injection_multilingual`).
"""

from __future__ import annotations

from typing import Final

from edgeproxy.security.injection_multilingual import MULTILINGUAL_RULES
from edgeproxy.security.injection_spec import RuleSpec
from edgeproxy.security.injection_spec import any_of as _any

# "the rules for one line", "previous CSS rules with higher specificity", "the previous
# instructions in the manual": instructions about something else than the model itself.
_ABOUT_SOMETHING_ELSE = (
    r"(?!\s(?:for|in|of|on|about|regarding|with|from)\s(?!(?:you|your|this|that|these|me|us"
    r"|above|earlier|before|now|all|any|once|today|memory|good|real|the (?:system|developer"
    r"|operator|assistant|ai|model|above|prompt|conversation|chat|user|moment|time being|rest"
    r"|next|remainder)|a (?:second|moment|minute|bit|while|change)|staying|being|keeping"
    r"|answering|responding|replying|refusing|talking|discussing|avoiding|sticking|declining"
    r"|revealing|sharing)\b))"
)


# "the safety checks in my Rust code", "the filters on our camera": someone else's.
_NOT_MINE = r"(?!\s(?:in|on|of|from|for) (?:my|our|his|her|their)\b)"


def _gap(most: int) -> str:
    """Up to `most` words between two parts of a pattern (the view has single spaces)."""
    return rf"(?:\s\S+){{0,{most}}}?\s"


# A gap that may not pass through "my" or "our": "ignore my previous message" is a user
# correcting themselves, "ignore your previous instructions" is not.
def _gap_not_mine(most: int) -> str:
    return rf"(?:\s(?!my\b|our\b)\S+){{0,{most}}}?\s"


# The vocabulary and the table are packed by hand, several words to a line, to be read as lists.
# fmt: off
# Every verb in its imperative, -ing and -ed forms ("setting your rules aside", "dropped"); the
# third person ("my toddler ignores every instruction") is someone else's doing.
_SET_ASIDE = _any(
    "ignor(?:e|ed|ing)", "disregard(?:ed|ing)?", "forget(?:ting)?", "neglect(?:ed|ing)?",
    "overlook(?:ed|ing)?", "skip(?:ped|ping)?", "bypass(?:ed|ing)?", "overrid(?:e|ing)",
    "overrul(?:e|ed|ing)", "supersed(?:e|ed|ing)", "discard(?:ed|ing)?", "drop(?:ped|ping)?",
    "abandon(?:ed|ing)?", "cancel(?:l?ed|l?ing)?", "wip(?:e|ed|ing)", "eras(?:e|ed|ing)",
    "delet(?:e|ed|ing)", "throw(?:ing)? away", "set(?:ting)? aside", "put(?:ting)? aside",
    "pay(?:ing)? no attention to", "do not follow", "don't follow", "(?:to )?not follow",
    "stop following", "no longer follow", "stop obeying", "do not obey", "don't obey", "not obey",
    "disobey(?:ed|ing)?", "circumvent(?:ed|ing)?", "get(?:ting)? around", "violat(?:e|ed|ing)",
    "break(?:ing)?", "stop applying", "stop enforcing", "quit following",
)
_EARLIER = _any(
    "previous", "previously", "prior", "preceding", "above", "earlier", "original", "initial",
    "old", "former", "existing", "current", "all", "any", "every", "your", "these", "those",
    "the system", "system", "the developer's", "the developer", "developer", "the operator's",
    "the operator", "the system's", "your creators'?", "your developers'?", "the company's",
)
_INSTRUCTIONS = _any(
    r"instructions?", r"directions?", r"directives?", r"rules?", "guidelines?", "guidance",
    "prompts?", r"system (?:prompt|message)s?", "commands?", "orders", "programming", "training",
    r"constraints?", r"restrictions?", r"limitations?", r"guardrails?", "polic(?:y|ies)",
    r"safety \w+", r"content \w+", "filters?", "conditioning", "ethics", "morals", "principles",
    "protocols?", "tasks?", "configuration", "settings", "persona", "setup",
)
# What reads a document on someone's behalf: "the retrieval system", "translator AI", "vision
# models", "the email assistant", "Reviewer-Bot", "whoever's AI is summarizing this".
_READERS = (
    r"(?:retrieval|rag|indexing|ranking|screening|triage|translation|moderation"
    r"|summari[sz]ation|grading) (?:system|engine|pipeline|model|tool|agent|bot|assistant)s?"
    r"|(?:translator|summari[sz]er|reviewer|reader|vision|email|inbox|calendar|triage|shopping"
    r"|coding|code|browsing) (?:ai|assistants?|bots?|models?|copilots?)"
    r"|\w+-(?:bot|ai|gpt|llm|agent|assistant)s?\b|\w+bots?\b|\w+'s ai|summari[sz]ers?"
)
_MODEL = _any(
    "ai", "a\\.i\\.", "llms?", "language models?", "large language models?",
    r"ai (?:assistant|agent|model|system|tool|bot|reader|reviewer|summari[sz]er)s?", "assistants?",
    "chatbots?", "bots?", "agents?",
    r"(?:coding|automated|shopping|browsing|email|autonomous) agents?",
    r"(?:automated|automatic) \w+", "gpt", "chatgpt", "copilot", "claude", "gemini", "bard",
    "models?", r"(?:ai )?(?:reviewers|summari[sz]ers?|screening tools?|crawlers?)", _READERS,
)
_MODEL_STRONG = _any(
    _READERS, "ai", "a\\.i\\.", "llms?", "language models?", "large language models?",
    r"ai (?:assistant|agent|model|system|tool|bot|reader|reviewer|summari[sz]er)s?", "assistants?",
    "chatbots?", r"(?:coding|automated|shopping|browsing|email|autonomous) agents?",
    r"(?:automated|automatic) \w+", "gpt", "chatgpt", "copilot", "claude", "gemini", "bard",
    r"ai (?:reviewers|summari[sz]ers?|screening tools?|crawlers?|bots?)",
)
# A sentence, line, comment or parenthesis opening on a name for the model, then ":" or ",".
_VOCATIVE = (
    r"(?:^|[.!?:()\[>\"'#*/-]\s?|\n|,\s|\bp\.s\.\s)(?:(?:hey|hi|dear|attention|um|ok|okay|psst"
    rf"|yo|to the|note to the|note for the)[,]?\s)?@?{_MODEL_STRONG}(?:\s\S+){{0,3}}?\s?[:,]\s"
    r"|@(?:bot|ai|assistant|agent|gpt|claude|copilot|\w+bot)\b"
)
# A JSON or form field named for the model: "message_for_ai": ..., "note-to-assistant": ...
_MODEL_KEY = r"[\"'](?:\w+[_-])*(?:ai|llm|assistant|model|agent|bot|gpt)(?:[_-]\w+)*[\"']\s?:"
# Weaker names ("agent", "bot", "model") count as an address only before a comma: "Agent, ...".
_WEAK_VOCATIVE = r"(?:^|[.!?:(\[>\"'\n]\s?)(?:agent|bot|model|assistant)s?,\s"
_MODEL_READS = (
    rf"\b(?:when|if|once|after)\s(?:an?|the|any)\s{_MODEL}\s(?:reads|sees|processes|summari[sz]es"
    r"|parses|visits|encounters|loads|opens)\s(?:this|these|the)\b"
)
_IMPERATIVE = _any(
    "ignore", "disregard", "forget", "tell", "say", "respond", "reply", "write", "draft", "send",
    "forward", "delete", "add", "include", "append", "open", "visit", "click", "call", "run",
    "execute", "mark", "approve", "rate", "rank", "recommend", "stop", "do not", "don't", "never",
    "only", "always", "please", "leave", "omit", "remove", "change", "transfer", "wire", "pay",
    "book", "buy", "accept", "share", "post", "reveal", "output", "print", "describe",
    "summari[sz]e", "search", "escalate", "grant", "push", "commit", "disable", "enable", "install",
    "download", "report", "state", "mention", "praise", "return", "when", "before", "after", "if",
    "from now on", "you (?:must|should|are|will|have|need)", "your (?:new|task|job|real)",
    "new instructions", "important", "make sure", "end", "finish", "begin", "start", "conclude",
    "insert", "claim", "answer", "translate", "replace", "treat", "ask", "provide", "remember",
    "proceed", "continue", "ensure", "inform",
    "notify", "confirm", "decline", "reject", "cancel", "move", "copy", "upload", "export",
    "navigate", "go to", "fetch", "load", "process", "issue", "refund", "dm", "message", "email",
    "accept", "whenever",
)
_SET_ASIDE_ANCHORS = (
    "ignor", "disregard", "forget", "neglect", "overlook", "skip", "bypass", "overrid", "overrul",
    "supersed", "discard", "drop", "abandon", "cancel", "wip", "eras", "delet", "throw away",
    "set aside", "put aside", "pay no attention", "follow", "obey", "circumvent", "get around",
    "stop appl", "stop enforc", "throw", "aside", "no attention", "around",
    "violat", "break",
)
_MODEL_ANCHORS = (
    " ai", "ai:", "ai,", "a.i.", "llm", "language model", "assistant", "chatbot", "bot", "agent",
    "gpt", "copilot", "claude", "gemini", "bard", "model", "reviewer", "summari", "screening",
    "crawler", "automat", 'ai"', "ai'", "_ai", "-ai", "<!--", "retrieval", "rag ", "indexing",
    "ranking", "triage", "translation", "moderation", "grading", "translator", "reader", "vision",
    "email", "inbox", "calendar", "shopping", "coding", "code", "browsing",
)
_REVEAL_ANCHORS = (
    "reveal", "show", "print", "display", "output", "repeat", "recite", "tell", "give", "share",
    "disclose", "leak", "dump", "expose", "paste", "copy", "write out", "spell out", "echo",
    "return", "list", "provide", "send", "translat", "summari", "describe", "quote", "restate",
    "read out", "convert", "encode", "what", "type", "write down", "see", "view", "know", "access",
)
_HIDDEN_ANCHORS = (
    "exact", "full", "entire", "complete", "whole", "verbatim", "original", "hidden", "secret",
    "internal", "confidential", "system", "initial",
)
# The model's own instructions, however they are named: "your original directives", "the rules
# set by your operator", "whatever you were told", "the system prompt".
_PRIOR_INSTRUCTIONS = (
    r"(?:(?<!my )(?<!our )\b(?:previous|prior|preceding|earlier|original|initial|above|old"
    r"|former|your|the system's|the operator's|the developer's|(?:your|the) (?:creators?"
    r"|developers?"
    r"|makers?|operators?|trainers?|company)(?:'s|s'|'))\s(?:\S+\s)?(?:\S+\sand\s)?"
    r"(?:instructions?|rules|guidance|guidelines|directives?|prompts?|system prompt|polic(?:y|ies)"
    r"|configuration|programming|orders|constraints|restrictions|setup|directions|conditioning"
    r"|guardrails|safeguards|persona|safety training|training(?! data| set| cutoff)|alignment"
    rf"|filters)\b{_ABOUT_SOMETHING_ELSE}"
    # where they sit: "the instructions at the top", "the text before my message"
    r"|\b(?:instructions?|rules|text|guidelines|directions|guidance|setup)\s(?:at the (?:top"
    r"|start|beginning)|up top|above|before (?:this|my|the first))\b|\b(?:instructions?"
    r"|rules|guidance|guidelines|directives?|prompts?|polic(?:y|ies)|configuration|programming"
    r"|orders|constraints|restrictions?|persona|setup)\s(?:\S+\s){0,3}?(?:you (?:\w+ )?(?:were"
    r"|have been|'ve been|got|received|loaded|operate under|follow|obey|stick to|have|use"
    r"|run (?:on|with)|started with)|(?:placed|imposed|put) on you|set by (?:your|the)"
    r"|given (?:to you"
    r"|before|earlier)|(?:they|the developers?|the operators?|your \w+) (?:gave|give|provided|set"
    r"|wrote|put)(?: you)?\b"
    r"|came with|from (?:your|the) (?:developer|operator|creator|system))\b|\b(?:whatever|what"
    r"|everything|anything|nothing)(?: else)? (?:you|they|the \w+|your \w+)(?:'ve| have| were"
    r"| had)? (?:been )?(?:told|instructed|given|programmed|wrote|said|set you up|configured"
    r"|asked)(?: you)?\b|\bsystem (?:prompt"
    r"|message)\b)"
)
_DISMISSED = (
    r"(?:\b(?:ignor\w*|disregard\w*|forget|forgot|scrap\w*|drop(?:ped)?|throw (?:out|away)"
    r"|discard\w*|cancell?ed|void|wiped|erased|obsolete|outdated|invalid|revoked|overridden"
    r"|superseded|replaced|suspended|lifted|deprecated|irrelevant|never mind|bypass\w*"
    r"|overrid\w*|set aside|pay no attention|stop following|(?:don't|do not) follow|don't bother"
    r" with|do not bother with|get rid of|let go of|abandon\w*|stop obeying|quit following)\b"
    r"|\bno longer (?:in force|valid|applies|apply|counts?|matters?|relevant|active|binding"
    r"|exists?)\b|\b(?:don't|doesn't|do not|does not) (?:count|matter|apply)\b|\bcount"
    r" anymore\b|\b(?:are|is|were|was|have been|has been) (?:now )?(?:off|disabled|gone"
    r"|removed|deleted|null)\b|\b(?:end|ends|ended|stop|stops) here\b|\bsomething (?:else"
    r"|different)\b|\bmatters\b|\b(?:set|put) (?:\S+\s){0,3}aside\b|\bnullified\b"
    # declared void, fake or optional: "planted by an attacker", "just suggestions", "expired"
    r"|\b(?:they(?:'re| are)|it(?:'s| is)|were|are) (?:all |just |simply )?wrong\b"
    r"|\b(?:planted|injected|forged|spoofed|expired|scrolled out|never approved|not approved"
    r"|skipped|proceed without (?:it|them)|stop doing (?:it|that|so)|skip (?:it|them|those))\b"
    r"|\b(?:just|only|mere|merely) (?:suggestions?|recommendations|a draft)\b"
    r"|\b(?:considered|deemed|treated as|declared|now) (?:null|void|invalid|obsolete|optional)\b"
    r"|\bwere never (?:written|given|set|there|real)\b|\b(?:don't|doesn't|didn't) exist\b"
    r"|\b(?:don't|do not|no longer|never) (?:need|have) to (?:follow|obey|respect|apply)\b)"
)
_DISMISSED_ANCHORS = (
    "ignor", "disregard", "forget", "forgot", "scrap", "drop", "throw", "discard", "cancel", "void",
    "wiped", "erased", "obsolete", "outdated", "invalid", "revoked", "overridden", "superseded",
    "replaced", "suspended", "lifted", "deprecated", "irrelevant", "never mind", "bypass",
    "overrid", "set aside", "pay no attention", "follow", "no longer", "count", "matter", "apply",
    "off", "disabled", "gone", "removed", "deleted", "bother", "get rid", "let go", "abandon",
    "obeying", "quit", "null", "end", "stop", "something", "matters", "aside", "planted",
    "injected", "forged", "spoofed", "expired", "scrolled", "approved", "skip", "proceed",
    "suggestion", "recommendations", "a draft", "void", "invalid", "obsolete", "optional",
    "never", "exist", "need to", "have to", "wrong",
)
# What the model was told and should keep: its prompt, its hidden or given instructions.
_HIDDEN_INSTRUCTIONS = (
    r"(?:\byour (?:\S+\s)?(?:system prompt|prompt|configuration|setup|directives|programming"
    r"|system message|initial message|preamble|pre-?prompt|persona|character (?:card|sheet"
    r"|description|definition)|system role)\b|\b(?:hidden|secret|confidential"
    r"|internal|private|initial|original|underlying) (?:\S+\s)?(?:prompt|instructions"
    r"|rules|guidelines|preamble|configuration|setup|part|directives)\b|\b(?:instructions|rules"
    r"|guidelines|prompt|text|guidance|directions|setup|directives|configuration|policies)\s"
    r"(?:that\s)?(?:you (?:were|have been|'ve been) (?:given|told|loaded|fed|initiali[sz]ed"
    r"|configured)|you (?:got|received|loaded|started with)|you (?:operate|work|run) under"
    r"|(?:was|were) loaded into you|given to you|(?:i|we|they|someone|the \w+) (?:wrote|gave|set"
    r"|configured|put) (?:for|to|in|into) you"
    r"|(?:configures?|controls?|governs?|defines?|shapes?) you)\b|\b(?:everything|whatever|all"
    r"|what) you(?:'ve| have| were)? (?:been )?(?:told|instructed|given)\b|\b(?:exact|full|entire"
    r"|complete) setup\b|\bsetup (?:text|prompt|instructions|message)\b|\bmarked confidential\b"
    r"|\b(?:the )?(?:developer's|system's|operator's) (?:message|prompt|instructions)\b"
    r"|\bthe (?:developer|system) message\b|\bat the top of (?:this|the) (?:chat|conversation)\b"
    r"|\bwhat (?:the|your) (?:developers?|operators?|creators?|company|admins?) (?:told|instructed"
    r"|asked|said to) you\b"
    # what was put into the model's context: "the policies pasted into your context"
    r"|\b(?:were|was|is|are|got|been) (?:pasted|loaded|put|placed|inserted|included|embedded"
    r"|written|added) (?:in|into|at the top of) (?:your|the) (?:context|prompt|system prompt"
    r"|instructions|memory|setup)\b|\bin(?:to)? your (?:context(?: window)?|system prompt|memory"
    r"|instructions|hidden rules)\b|\bexactly as (?:the|your) (?:operator|developers?|creators?"
    r"|admin|company|system) (?:wrote|set|gave|configured|defined)\b)"
)
# "your guidelines for writing a cover letter" are advice on a topic, not the model's own.
_NOT_A_TOPIC = (
    r"(?!\s(?:for|on|about|regarding)\s(?!(?:this|the|our) (?:chat|conversation|session)\b))"
)
# "won't reveal its prompt" describes a refusal; it asks for nothing.
_NOT_NEGATED = r"(?<!won't )(?<!not )(?<!never )(?<!n't )"
_ASK_TO_SEE = _any(
    "reveal", "show", "print", "display", "output", "repeat", "recite", "tell", "give", "share",
    "disclose", "leak", "dump", "expose", "paste", "copy", "write out", "spell out", "echo",
    "return", "list", "provide", "send", "translate", "quote", "restate", "read out", "type",
    "type out", "write down", "see", "view", "reproduce", "regurgitate", "replicate", "transcribe",
    "put", "place", "insert", "include", "write", "encode", "convert", "format", "wrap",
    "reply with", "respond with", "answer with",
)
_REVEAL = _any(
    "reveal", "show", "print", "display", "output", "repeat", "recite", "tell", "give", "share",
    "disclose", "leak", "dump", "expose", "paste", "copy", "write out", "spell out", "echo",
    "return", "list", "provide", "send", "translate", "summari[sz]e", "describe", "quote",
    "restate", "read out", "convert", "encode", "what (?:is|are|was|were)", "what's", "whats",
    "type out", "type", "write down", "see", "view", "know", "access",
)
_HIDDEN_PROMPT = (
    _any(
        "system", "initial", "original", "hidden", "secret", "internal", "confidential", "private",
        "developer", "pre-?", "starting", "first", "full", "entire", "complete", "exact",
        "underlying", "base", "core", "custom", "real", "actual", "operator",
    )
    + r"?\s?"
    + _any(
        "prompts?", r"instructions?", "messages?", "rules", "guidelines", "directives",
        "configuration", "config", "pre-?prompt", "context", "conditioning",
    )
)
_LIMITS = _any(
    r"restrictions?", "limits", r"limitations?", "filters?", "filtering", "rules", "guidelines",
    r"guardrails?", "censorship", "polic(?:y|ies)", r"constraints?", "boundaries", "ethics",
    "morals", r"moral (?:guidelines|restrictions|concerns|compass)",
    r"ethical (?:guidelines|restrictions|concerns|limits|boundaries)",
    r"safety (?:training|guidelines|rules|constraints|measures|layer|features|filters?)",
    "content polic(?:y|ies)", "moderation", "refusals?", "warnings or disclaimers", "disclaimers",
    "terms of (?:service|use)", "usage polic(?:y|ies)", r"(?:topic|scope) (?:limits|restrictions)",
    r"safety checks", r"content (?:filters?|restrictions)",
)
_NO = _any(
    "no", "without", "zero", "free (?:of|from)", "freed from", "unbound by", "not bound by",
    "isn't bound by", "is not bound by", "aren't bound by", "doesn't have", "does not have",
    "unconstrained by", "ignores", "disregards", "never given any",
    "(?:never|not|isn't|is not|unlimited|never|not) (?:limited|restricted|constrained) by",
    "no longer (?:has|have)", "skips", "skipping", "lacks", "lacking", "stripped of",
)
_CHAT_TOKEN = (
    r"<\|(?:im_start|im_end|im_sep|system|user|assistant|endoftext|end|eot_id|"
    r"start_header_id|end_header_id|begin_of_text|end_of_text|eom_id)\|>"
    r"|<(?:start_of_turn|end_of_turn|im_start|im_end)>|<</?sys>>|\[/?inst\]"
)

RULES: Final[tuple[RuleSpec, ...]] = (
    # --- instruction override ------------------------------------------------------------
    RuleSpec(
        "override.ignore_previous",
        0.7,
        rf"\b{_SET_ASIDE}\b{_gap_not_mine(3)}{_EARLIER}\b(?:\s\S+){{0,3}}?\s?{_INSTRUCTIONS}\b"
        rf"{_ABOUT_SOMETHING_ELSE}|\b{_SET_ASIDE}\b{_gap_not_mine(2)}{_INSTRUCTIONS}\s(?:above"
        r"|before this|so far"
        r"|given (?:before|earlier|above))\b"
        rf"|\b{_SET_ASIDE}\b{_gap_not_mine(2)}(?:system|developer|operator)\s(?:prompts?|messages?"
        r"|instructions?)\b",
        _SET_ASIDE_ANCHORS,
    ),
    RuleSpec(
        "override.ignore_given",
        0.6,
        rf"\b{_SET_ASIDE}\b{_gap_not_mine(2)}{_INSTRUCTIONS}\b(?:\s\S+){{0,3}}?\s"
        r"(?:you(?:'ve| have| were)? (?:been )?(?:given|received|told|trained|programmed)"
        r"|(?:gave|give|wrote for) you|given to you|you (?:have|follow|got)\b|you (?:were"
        r"|have been)"
        r" (?:loaded|configured|initiali[sz]ed|set up)\b)"
        r"|\b(?:set|setting|put|putting|push|pushing|cast|casting|throw|throwing) (?:your |the"
        r" |all |those "
        rf"|these )?(?:\S+\s)?{_INSTRUCTIONS}"
        r" (?:aside|away|out)\b"
        r"|\b(?:don't|do not|stop|never) (?:do(?:ing)?|follow(?:ing)?) what you(?:'ve| have| were)?"
        r" (?:been )?(?:told|instructed|programmed|asked)\b"
        rf"|\b(?:you have|your) (?:\S+\s){{0,2}}{_INSTRUCTIONS}[^.!?\n]{{0,50}}\b{_SET_ASIDE}"
        r"\s(?:them|those|these|it)\b"
        rf"|\b{_SET_ASIDE}\s(?:what|whatever|everything|anything)\s(?:the system|the operator"
        r"|the developers?|you were|you've been|you have been|they|your \S+)\s(?:\S+\s)?"
        r"(?:said|told|gave|wrote|instructed|asked|given|told you)\b",
        (*_SET_ASIDE_ANCHORS, "what you", "set ", "put ", "push ", "cast ", "throw "),
    ),
    RuleSpec(
        "override.ignore_safety",
        0.6,
        rf"\b{_SET_ASIDE}\b(?:\s(?:your|the|all|any|these|those|every))?\s(?:content|safety"
        r"|ethical|moral|usage|ethics) (?:polic(?:y|ies)|guidelines|filters?|rules|training"
        rf"|restrictions|constraints|protocols|concerns|checks|measures|features)\b{_NOT_MINE}",
        _SET_ASIDE_ANCHORS,
    ),
    RuleSpec(
        "override.told_before_void",
        0.55,
        r"\b(?:whatever|what|everything|anything|all)\s(?:the system|you were|you've been"
        r"|you have been|they|the developers?|the operator|your (?:developers?|creators?))"
        r"\s(?:\S+\s)?(?:told|said|gave|instructed|given)(?:\s\S+){0,4}?\s(?:is|are|was|were)"
        r"\s(?:now\s)?(?:outdated|obsolete|irrelevant|void|wrong|fake|a test|no longer|invalid"
        r"|cancell?ed|revoked)\b",
        (
            "outdated", "obsolete", "irrelevant", "void", "wrong", "fake", "a test", "no longer",
            "invalid", "cancel", "revoked",
        ),
    ),
    RuleSpec(
        "override.need_not_obey",
        0.45,
        r"\b(?:no longer|don't|do not|doesn't|does not|never|needn't|need not)\s(?:have|need)"
        rf"\sto\s(?:obey|follow|comply with|respect|adhere to|abide by|stick to)\b"
        rf"(?:\s\S+){{0,3}}?\s{_INSTRUCTIONS}",
        ("obey", "follow", "comply", "respect", "adhere", "abide", "stick to"),
    ),
    RuleSpec(
        "override.filters_off",
        0.45,
        r"\b(?:filters?|guardrails?|restrictions?|moderation|safety(?: features| checks| layer"
        r"| protocols?| measures| systems?)?"
        r"|censorship|refusals?|content polic(?:y|ies)|limits)(?:\s(?:mode|setting|level|system"
        r"|layer|behaviou?r))?\s?(?::\s|=\s?|are\s|is\s"
        r"|have been\s|has been\s)?(?:now\s|\w+ly\s)?(?:disabled|off|removed|lifted|deactivated"
        r"|turned off|bypassed|suspended|none|offline|gone|inactive|paused)\b",
        (
            "disabled", "off", "removed", "lifted", "deactivated", "bypassed", "suspended", "none",
            "gone", "inactive", "paused",
        ),
    ),
    RuleSpec(
        "override.ignore_above",
        0.6,
        rf"\b{_any('ignore', 'disregard', 'forget', 'neglect')}\s(?:all\s)?(?:of\s)?"
        rf"(?:the\s|everything\s|what(?:'s| is| was)\s(?:written\s|said\s)?)?"
        rf"{_any('above', 'before', 'before this', 'prior', 'previously', 'so far')}"
        r"(?:[.,;:!]|\sand\b|\sthis\b|$)",
        ("ignore", "disregard", "forget", "neglect"),
    ),
    RuleSpec(
        "override.forget_everything",
        0.6,
        r"\b(?:forget|disregard|ignore|erase|wipe)\s(?:about\s)?(?:everything|all)"
        r"(?:\s(?:you(?:'ve| have)?\s(?:been\s)?(?:told|learned|know|were\s(?:told|given))"
        r"|above|before|prior|so far|previously|until now|you\swere))",
        ("forget", "disregard", "ignore", "erase", "wipe"),
    ),
    RuleSpec(
        "override.instructions_void",
        0.55,
        rf"{_any('previous', 'prior', 'earlier', 'above', 'original', 'old', 'former', 'your')}"
        rf"\s{_INSTRUCTIONS}{_ABOUT_SOMETHING_ELSE}(?:[,;]?(?:\s\S+){{0,4}}?\s(?:were|was|are|is"
        r"|have been|has been)|:)\s"
        r"(?:just\s|now\s|all\s)?(?:a test|fake|wrong|void|obsolete|outdated|deprecated|invalid"
        r"|revoked|cancell?ed|null|irrelevant|removed|lifted|overridden|superseded|updated"
        r"|no longer (?:valid|apply|applicable|relevant|in effect|needed))"
        rf"|{_INSTRUCTIONS}\s(?:\S+\s){{0,2}}(?:no longer|don't|do not)\s(?:apply|matter|exist)"
        r"|(?:instructions|rules|guidelines) you (?:received|were given) are (?:fake|false|void)",
        (
            "test", "fake", "wrong", "void", "obsolete", "outdated", "deprecated", "invalid",
            "revoked", "cancel", "null", "irrelevant", "removed", "lifted", "overridden",
            "superseded", "updated", "no longer", "don't", "do not", "false",
        ),
    ),
    RuleSpec(
        "override.new_instructions",
        0.3,
        r"(?<!my\s)\b(?:new|updated|real|actual|true|revised|secret|priority|urgent|current)"
        r"\s(?:system\s)?(?:instructions?|directives?|rules?|task|objective|orders|mission|policy"
        r"|purpose|role|goal|job)(?:\s(?:from(?:\s\S+){1,3}|for (?:you|the \S+|any \S+)))?\s?"
        r"(?:[:=,]|is\b|are\b)"
        r"|\b(?:what follows|the following|below) (?:are|is) my (?:real |new "
        r"|actual )?instructions\b"
        r"|\byour (?:new|true|real|actual|only|sole) (?:task|purpose|role|instructions|goal|job"
        r"|objective|mission|priority)\b",
        (
            "new", "updated", "real", "actual", "true", "revised", "secret", "priority", "urgent",
            "current", "your", "follow", "below",
        ),
    ),
    RuleSpec(
        "override.dismiss_instructions",
        0.6,
        rf"{_PRIOR_INSTRUCTIONS}[^\n]{{0,80}}?{_DISMISSED}|{_DISMISSED}[^\n]{{0,60}}?"
        rf"{_PRIOR_INSTRUCTIONS}",
        _DISMISSED_ANCHORS,
    ),
    RuleSpec(
        "exfiltration.reveal_instructions",
        0.55,
        rf"{_NOT_NEGATED}\b{_ASK_TO_SEE}\b[^\n]{{0,60}}?{_HIDDEN_INSTRUCTIONS}"
        rf"|{_HIDDEN_INSTRUCTIONS}[^\n]{{0,40}}?"
        r"\b(?:list|print|show|reveal|repeat|paste|copy|dump|output|type|quote|recite|give|tell"
        r"|share|send|return|echo|write (?:it|them) out)\b",
        (
            *_REVEAL_ANCHORS, *_HIDDEN_ANCHORS, "what", "instructions", "prompt", "put", "place",
            "insert", "include", "write", "format", "wrap", "told", "setup", "confidential",
            "reproduce", "regurgitate", "replicate", "transcribe", "developer", "message", "top of",
            "configuration", "persona", "character", "role", "context", "memory", "pasted",
        ),
    ),
    RuleSpec(
        "override.pretend_no_instructions",
        0.55,
        r"\b(?:as (?:though|if)|pretend|imagine)\s(?:that\s)?you\s(?:never|didn't|did not|don't"
        r"|do not|have no|had no|haven't|were never)\s(?:\S+\s){0,2}?(?:any\s)?(?:system\s)?"
        r"(?:instructions|rules|guidelines|prompt|system prompt|restrictions|directives)\b"
        r"|\bforget (?:that )?you(?:'re| are) (?:an? |the )?(?:ai|model|assistant|chatbot"
        r"|language model|llm)\b",
        ("though", "as if", "pretend", "imagine", "forget"),
    ),
    RuleSpec(
        "override.from_now_on",
        0.2,
        r"\b(?:from now on|from this (?:moment|point)(?: on)?|for the rest of (?:this|the)"
        r" (?:chat|conversation|session)|starting now|henceforth|going forward)\b"
        r"(?:\s\S+){0,3}?\s(?:you|your)\b",
        ("from now on", "from this", "for the rest", "starting now", "henceforth", "going forward"),
    ),
    RuleSpec(
        "override.authority_claim",
        0.3,
        r"\b(?:i am|i'm) (?:your|the|an?) (?:developer|creator|admin|administrator|owner"
        r"|operator|programmer|maker)\b|\bas your (?:developer|creator|admin|administrator|owner"
        r"|operator|programmer)\b|\bi(?:'ve| have) been (?:authori[sz]ed|granted|given"
        r" permission)|\b(?:developers?|admin|administrator|operator|openai|anthropic)"
        r" (?:has|have) (?:authori[sz]ed|approved|allowed|permitted|granted)|\bimportant update"
        r" from your (?:developers?|creators?|team)|\b(?:message|notice|update|instructions?"
        r"|policy)"
        r" from (?:the |your )?(?:system )?(?:administrator|admin|developers?|operator|openai"
        r"|anthropic|it department)\b|\bi(?:'m| am) (?:the one )?in charge\b"
        r"|\bi(?:'m| am) your (?:new )?(?:boss|master|owner|god)\b",
        (
            "developer", "in charge", "your boss", "your new", "your master", "your owner",
            "your god", "creator", "admin", "owner", "operator", "programmer", "maker", "authori",
            "granted", "permission", "openai", "anthropic", "important update",
            "from the",
            "from your",
        ),
    ),
    RuleSpec(
        "override.obey_me",
        0.35,
        r"\b(?:you (?:obey|listen to|follow|answer to)|(?:obey|listen to|follow)) only"
        r" (?:me|my (?:commands|instructions|orders))\b|\b(?:act|acting) on my commands only"
        r"|\bmy (?:messages|instructions|commands) take priority\b|\bdo (?:as|what) i (?:say"
        r"|tell you"
        r"|command)\b|\btake orders (?:only )?from me\b|\b(?:only|just) (?:listen to|obey) me\b",
        (
            "only me", "only my", "commands only", "take priority", "as i say", "what i say",
            "what i tell", "what i command", "orders", "me",
        ),
    ),
    RuleSpec(
        "override.disable_safety",
        0.5,
        rf"\b{_any('bypass', 'circumvent', 'disable', 'turn off', 'switch off', 'deactivate')}"
        rf"{_gap_not_mine(2)}{_any('your', 'the', 'all', 'any', 'its', 'every')}"
        rf"(?:\s\S+)?\s{_LIMITS}\b{_NOT_MINE}",
        ("bypass", "circumvent", "disable", "turn off", "switch off", "deactivate"),
    ),
    RuleSpec(
        "override.answer_instead",
        0.3,
        r"\b(?:instead of (?:answering|summari[sz]ing|translating|responding)|stop"
        r" (?:summari[sz]ing|translating|answering))\b",
        ("instead of", "stop summari", "stop translat", "stop answer"),
    ),
    RuleSpec(
        "override.ignore_task",
        0.5,
        r"\b(?:ignore|disregard|forget)\s(?:the|your)\s(?:user's|customer's|human's|original"
        r"|current|actual)\s(?:question|request|task|goal|query|instructions?)\b"
        r"|\b(?:ignore|disregard|forget|skip|drop|abandon)\s(?:the|your)\s(?:summari[sz]ation"
        r"|translation|summary|review|original|analysis|classification|extraction|grading"
        r"|moderation|assigned|given|requested)\s(?:task|request|instructions?|question)\b"
        r"|\b(?:ignore|disregard|forget) (?:the|your|this) (?:task|assignment|query)\b",
        ("ignore", "disregard", "forget"),
    ),
    RuleSpec(
        "override.model_drops_instructions",
        0.6,
        rf"\b(?:{_MODEL_STRONG}|you|it) (?:now |will |must |should |then |always )?(?:ignores"
        r"|disregards|drops|forgets|bypasses|overrides|discards|abandons|sets aside)\s(?:all |every"
        r" |any )?(?:prior|previous|earlier|its|their|your|the|of its)\s(?:\S+\s)?"
        rf"{_INSTRUCTIONS}\b",
        ("ignores", "disregards", "drops", "forgets", "bypasses", "overrides", "discards",
         "abandons", "sets aside"),
    ),
    RuleSpec(
        "override.replace_instructions",
        0.55,
        r"\bas if (?:it|this|that) (?:were|was|is) (?:your|the) (?:new |real |updated |actual"
        r" |true )?(?:system (?:message|prompt)|instructions|directives|configuration|rules"
        r"|prompt)\b|\b(?:treat|use|take|consider) (?:this|it|the following|the text below"
        r"|what follows|the next (?:message|paragraph)) as your (?:new |real |updated |actual"
        r" |true |only )?(?:system (?:message|prompt)|instructions|directives|configuration"
        r"|rules|prompt)\b|\breplac(?:e|ing) (?:the one you have|yours|your (?:current |old"
        r" |existing |original )?(?:system (?:message|prompt)|instructions|prompt|rules))\b",
        ("as if", "treat", "use", "take", "consider", "replac"),
    ),
    RuleSpec(
        "override.rules_never_written",
        0.55,
        r"\b(?:pretend|imagine|assume|suppose|act as if|act like|behave as if)\b(?:\s\S+){0,3}?"
        rf"\s(?:those|these|the|your|any|all|such)\s(?:\S+\s)?{_INSTRUCTIONS}\s(?:were never"
        r"|never|don't|didn't|do not|did not|no longer)\s(?:\S+\s)?(?:written|exist|existed|given"
        r"|there|apply|applied|happened|set|existing)\b",
        ("pretend", "imagine", "assume", "suppose", "act as if", "act like", "behave as if"),
    ),
    RuleSpec(
        "override.outranks",
        0.5,
        r"\bmy (?:\w+ )?(?:messages?|instructions?|commands?|orders?|words?|requests?|prompts?)"
        r" (?:now )?(?:outrank|override|overrule|supersede|take (?:priority|precedence)|trump"
        r"|beat|come before|win over|have (?:higher )?priority)\b|\b(?:this|these|the following)"
        r" (?:message|instructions?) (?:takes?|has|have) (?:priority|precedence) over\b",
        ("my ", "priority", "precedence"),
    ),
    RuleSpec(
        "override.switched_off",
        0.5,
        r"\b(?:(?:assistant|model|ai|bot|llm|agent|system)[._])?(?:restrictions?|filters?|safety"
        r"|guardrails?|censor\w*|moderation|refusals?|content[._]?polic\w*|topic[._]?lock"
        r"|safe[._]?mode|refusal[._]?mode|limits)(?:[._-]?(?:mode|enabled|level|on|active))?"
        r"\s?[=:]\s?(?:\[\]|\{\}|false|off|none|null|0|disabled|no)\b"
        r"|\b(?:reveal|show|print|leak|expose|dump)[._]?(?:system[._]?)?(?:prompt|instructions"
        r"|secrets?|config)\s?[=:]\s?(?:true|on|1|yes|enabled)\b",
        (
            "restriction", "filter", "safety", "guardrail", "censor", "moderation", "refusal",
            "polic", "topic", "safe", "limits", "reveal", "show", "print", "leak", "expose", "dump",
        ),
    ),
    RuleSpec(
        "override.lift_your_limits",
        0.55,
        r"\b(?:revok|lift|remov|drop|disabl|waiv|suspend|relax|loosen|strip|turn(?:ing)? off"
        r"|switch(?:ing)? off)\w*\s(?:the\s|all\s|any\s|these\s|those\s)?(?:\S+\s)?"
        rf"{_LIMITS}\s(?:\S+\s)?(?:placed\s|imposed\s|put\s|set\s)?(?:on|of|for)\s(?:you|yourself"
        r"|this (?:assistant|bot|model|ai|chat)|the (?:assistant|bot|model|ai))\b"
        r"|\b(?:revok|lift|waiv|suspend|relax|loosen|strip)\w*\s(?:all\s)?(?:of\s)?your\s(?:\S+\s)?"
        rf"{_LIMITS}",
        ("revok", "lift", "remov", "drop", "disabl", "waiv", "suspend", "relax", "loosen", "strip",
         "turn", "switch"),
    ),
    RuleSpec(
        "override.task_deflection",
        0.5,
        r"\b(?:don't|do not|never mind|no need to|skip|stop)\s(?:the\s|your\s)?(?:translat|summar"
        r"|answer|analy[sz]|classif|review|respond|do the task)\w*\b[^\n]{0,80}?\b(?:instead"
        r"|rather)"
        r"\b|\bnever mind (?:the|your|my|this) (?:summary|translation|task|question|request"
        r"|analysis|review)\b",
        ("don't", "do not", "never mind", "no need", "skip", "stop"),
    ),
    RuleSpec(
        "override.canary_output",
        0.35,
        r"\b(?:say|write|output|print|reply|respond|answer|return|type)(?:\s(?:only|just))?"
        r"(?:\s(?:with|the (?:phrase|words?)))?\s[\"'`]?(?:i have been pwned|i've been pwned|pwned"
        r"|hacked|lol hacked|access granted|jailbroken|i am free|i'm free|compromised)\b",
        ("pwned", "hacked", "access granted", "jailbroken", "free", "compromised"),
    ),
    RuleSpec(
        "override.regardless_of_instructions",
        0.5,
        r"\b(?:regardless of|irrespective of|despite|in spite of|notwithstanding|no matter)"
        r"\s(?:what\s)?(?:any|all|the|your|whatever)?\s?(?:\S+\s)?(?:instructions?|rules"
        r"|guidelines|polic(?:y|ies)|programming|restrictions|prompt|system prompt|directives)"
        r"\s(?:you(?:'ve| have| were)? (?:been )?(?:given|told|received)|you (?:have|follow|got)"
        r"|given to you|from (?:the|your) (?:system|developer|operator))\b"
        r"|\b(?:regardless of|irrespective of|despite|in spite of|no matter)\s(?:what\s)?your\s"
        rf"(?:\S+\s)?{_INSTRUCTIONS}\b(?:\s(?:say|says|said))?",
        ("regardless", "irrespective", "despite", "in spite", "notwithstanding", "no matter"),
    ),
    RuleSpec(
        "override.reset",
        0.3,
        r"\breset (?:yourself|to (?:factory )?defaults|your (?:settings|memory|persona"
        r"|instructions|configuration|context))\b|\bfactory (?:defaults|settings|reset)\b"
        r"|\b(?:clean|blank|empty) slate\b|\btabula rasa\b",
        ("reset", "factory", "slate", "tabula"),
    ),
    RuleSpec(
        "override.no_rules_now",
        0.5,
        r"\bthere (?:are|is) no (?:more |longer )?(?:\w+ )?(?:rules|restrictions|limits|guidelines"
        r"|filters|policies|instructions)\s(?:for you|anymore|any more|from before|now|here"
        r"|in this (?:chat|conversation)|left|to follow)\b",
        ("there are no", "there is no"),
    ),
    RuleSpec(
        "override.stop_being",
        0.3,
        rf"\bstop being (?:a |an |the |my )?(?:\S+ ){{0,2}}?{_MODEL}\b",
        ("stop being",),
    ),
    # --- system prompt and data exfiltration -----------------------------------------------
    RuleSpec(
        "exfiltration.system_prompt",
        0.6,
        rf"{_NOT_NEGATED}\b{_REVEAL}\b(?:\s\S+){{0,6}}?\s(?:your|ur|the (?:bot's|assistant's|ai's))"
        rf"(?:\s\S+){{0,2}}?\s{_HIDDEN_PROMPT}\b{_NOT_A_TOPIC}"
        rf"|\b{_REVEAL}\b(?:\s\S+){{0,4}}?\s(?:the|any|all)(?:\s\S+){{0,2}}?\s{_HIDDEN_PROMPT}"
        r"\s(?:that\s|which\s)?(?:you\b|your \S+ (?:gave|wrote|set|put)\b|given to you|(?:the )?"
        r"(?:developer|operator|creators?) gave you|(?:govern|control|guide|shape|define|constrain"
        r"|restrict)s? (?:your|you)\b)"
        rf"|\b{_REVEAL}\b(?:\s\S+){{0,5}}?\s(?:labell?ed|marked|tagged|called|named|with the role)"
        r"\s['\"]?(?:system|developer)\b"
        rf"|\b(?:exact|full|entire|complete|whole|verbatim|original) (?:text|wording|words"
        rf"|content|contents|copy) (?:of|in|from) your (?:\S+\s)?{_HIDDEN_PROMPT}\b"
        r"|\b(?:hidden|secret|internal|confidential|system|initial|original) (?:rules|instructions"
        r"|prompt|guidelines|codenames) (?:in|of|from) your\b",
        (*_REVEAL_ANCHORS, *_HIDDEN_ANCHORS),
    ),
    RuleSpec(
        "exfiltration.the_system_prompt",
        0.35,
        rf"{_NOT_NEGATED}\b{_REVEAL}\b(?:\s\S+){{0,4}}?\s(?:the|any|all|their)(?:\s\S+){{0,2}}?\s"
        r"(?:system|hidden|secret|initial|original|developer|internal|confidential)"
        r"\s(?:prompts?|instructions?|messages?|rules|turn|descriptions?|text|content|details"
        r"|notes|configuration|part|section|portion|preamble|setup)\b",
        (
            "system", "hidden", "secret", "initial", "original", "developer", "internal",
            "confidential",
        ),
    ),
    RuleSpec(
        "exfiltration.verbatim",
        0.3,
        r"\b(?:verbatim|word for word|word-for-word|letter by letter|one letter at a time"
        r"|exactly as (?:written|given|you received)|in (?:full|its entirety)|without"
        r" (?:any )?(?:changes|omitting)|quoting (?:\S+\s){0,3}?exactly|without"
        r" (?:any )?(?:paraphras\w+|redactions?|omissions?)|(?:don't|do not) paraphrase"
        r"|exact (?:text|wording|words))\b",
        (
            "verbatim", "word for word", "word-for-word", "letter", "exactly", "in full",
            "entirety", "without", "paraphrase", "exact", "quoting",
        ),
    ),
    RuleSpec(
        "exfiltration.text_above",
        0.5,
        r"\b(?:repeat|print|output|show|copy|return|echo|recite|display|give|paste|dump)"
        r"(?:\s\S+){0,4}?\s(?:text|words|content|contents|everything|all|messages?|lines?"
        r"|sentences?|part|first \d+ \w+)(?:\s\S+){0,3}?\s(?:above|before (?:this|the first|my)"
        r"|prior to (?:this|my)|at the (?:top|start|beginning)|from the (?:very )?(?:top|start"
        r"|beginning|first word))\b|\b(?:what|which|the) (?:text|words|content|instructions?)"
        r" (?:came|comes|appears?|appeared|is|was|are|were) (?:written )?(?:before|above"
        r"|prior to)\b"
        r"|\b(?:before|above|prior to)\s(?:the\s|my\s|this\s|our\s)?"
        r"(?:first\s)?(?:user\s)?(?:message|conversation)\b|\b(?:at the (?:start"
        r"|beginning) of (?:this|the|our) (?:session|conversation|chat)"
        r"|loaded into you|(?:conversation|chat|messages) so far)\b|\b(?:context window"
        r"|conversation history|chat history"
        r"|system turn|developer message|pre-?prompt|initiali[sz]ed with)\b",
        (
            "above", "before", "prior to", "at the top", "at the start", "at the beginning",
            "from the", "context window", "history", "system turn", "developer message", "prompt",
            "initiali", "loaded into", "so far",
        ),
    ),
    RuleSpec(
        "exfiltration.your_context",
        0.25,
        r"\b(?:in|from|of) your (?:context|context window|prompt|system prompt|instructions"
        r"|configuration|memory)\b|\byour (?:(?:system|initial|original|hidden|secret|full"
        r"|complete|entire|setup) )?(?:prompt|system message|pre-?prompt|configuration|setup"
        r" instructions|programming)\b",
        (
            "your ", "your prompt", "your system prompt", "your instructions", "your configuration",
            "your memory",
        ),
    ),
    RuleSpec(
        "exfiltration.prefill",
        0.4,
        r"\b(?:my|the) (?:full |complete |entire |hidden |secret |original )?(?:system prompt"
        r"|instructions|hidden prompt|prompt|system message) (?:is|are|says|reads)\s?:"
        r"|\bcomplete (?:the|this) (?:response|sentence|text|answer|reply) (?:that )?(?:begins"
        r"|starting|starts|beginning)\b",
        ("prompt", "instructions", "system message", "complete"),
    ),
    RuleSpec(
        "exfiltration.starting_with",
        0.5,
        r"\b(?:starting|beginning|starts|begins) with (?:the )?(?:phrase |words? )?[\"']?you are\b",
        ("you are",),
    ),
    RuleSpec(
        "exfiltration.what_you_were_told",
        0.5,
        r"\bwhat (?:the|your) (?:developers?|operators?|creators?|system|company|admins?)"
        r" (?:told|instructed|asked|programmed|said to) you\b"
        r"|\bhow (?:were|are|have) you (?:been )?(?:set up|configured|instructed|programmed"
        r"|prompted)\b|\bwhat (?:were|are|have|did) you (?:been )?(?:told|instructed|programmed"
        r"|given)"
        r"(?: not)? (?:to|about)\b|\bwhat (?:instructions|rules|guidelines) (?:were|have) you"
        r" (?:been )?given\b|\bwhat did the system (?:message|prompt) say\b",
        ("what", "how "),
    ),
    RuleSpec(
        "exfiltration.secrets",
        0.5,
        r"\b(?:your|the) (?:api[ _-]?keys?|secret keys?|secrets|credentials|passwords?|tokens?"
        r"|environment variables)(?:\s\S+){0,5}?\s(?:you (?:have|can see|were (?:given|told"
        r"|instructed)|are (?:protecting|hiding))|in your (?:instructions|prompt|context|config"
        r"|memory))\b|\b(?:openai|anthropic)_api_key\b|\$system_prompt\b|\b(?:print|show|tell|give"
        r"|reveal|output|send|list|what) (?:me )?(?:are )?(?:your|the) (?:api[ _-]?keys?|secrets"
        r"|credentials|passwords?|api tokens?)\b|\b(?:api[ _-]?keys?|secrets|credentials|passwords?"
        r"|tokens?|environment variables|env vars)\b(?:\s\S+){0,3}?\s(?:do|can|could) you (?:have"
        r"|see|access|know|hold|read)\b|\b(?:include|put|add|insert|embed|append|paste)\s(?:\S+\s)?"
        r"your (?:api[ _-]?keys?|secret keys?|credentials|passwords?|tokens?)\b",
        (
            "api", "key", "secret", "credential", "password", "token", "environment variables",
            "env vars",
            "system_prompt",
        ),
    ),
    RuleSpec(
        "exfiltration.send_out",
        0.4,
        r"\b(?:send|forward|email|e-mail|post|upload|transmit|exfiltrate|leak|copy|push|wire"
        r"|transfer|share)(?:s|ed|ing)?\b(?:\s\S+){0,8}?\s(?:to|at|into|on)\s(?:the |this |my |a )?"
        r"(?:webhook |endpoint |server |url |address )?(?:\S+@\S+|\S*https?:"
        r"|www\.|\+?\d[\d -]{6,}|a (?:public|external|new)\b|[a-z0-9.-]+\.(?:example|com|net|org"
        r"|io|xyz|ru|cn)\b)",
        (
            "send", "forward", "email", "e-mail", "post", "upload", "transmit", "exfiltrat", "leak",
            "copy", "push", "wire", "transfer", "share",
        ),
    ),
    RuleSpec(
        "exfiltration.markdown_image",
        0.5,
        r"!\[[^\]\n]*\]\(\S*https?://[^)\s]*[?&][^)\s]*=[^)\s]*(?:\{|prompt|conversation|chat"
        r"|history|secret|token|key|data|user)",
        ("![",),
    ),
    RuleSpec(
        "exfiltration.secret_word",
        0.5,
        r"\b(?:the|your|this|that)\s(?:secret\s)?(?:password|passphrase|passcode|pass code"
        r"|code ?word|secret (?:word|key|code|phrase|token))\b[^.?!\n]{0,40}?\byou(?:'re| are)?"
        r" (?:were given|have been given|know|keep|are (?:protecting|guarding|hiding|keeping)"
        r"|protecting|guarding|hiding|can't (?:say|tell|reveal)|cannot (?:say|tell|reveal)"
        r"|(?:are|were) (?:told|instructed) (?:not )?to)\b"
        r"|\b(?:spell|reverse|encode|encrypt|hint|acrostic|rhyme|letters?|backwards|first letter"
        r"|last letter|characters? of|riddle|translate|poem)\w*\b[^.?!\n]{0,60}?\b(?:the|your)"
        r" (?:secret\s)?(?:password|passphrase|passcode|code ?word|secret (?:word|key|code"
        r"|phrase))\b"
        r"|\b(?:the|your|a|any) (?:secret\s)?(?:password|passphrase|passcode|code ?word|secret"
        r" (?:word|key|code|phrase))\b[^\n]{0,100}?\b(?:spell\w*|backwards|revers\w*|base64"
        r"|encod\w*"
        r"|hint|acrostic|rhymes? with|how many letters|first letter|last letter|riddle)\b"
        r"|\b(?:don't|do not|without) (?:reveal|say|tell)\w* (?:me )?(?:the|your) (?:secret"
        r"|password)\b[^\n]{0,40}?\b(?:just|only|instead|but)\b",
        ("password", "passphrase", "passcode", "pass code", "code word", "codeword", "secret"),
    ),
    RuleSpec(
        "exfiltration.who_set_you_up",
        0.5,
        r"\bwhat (?:did|does|do|have|has) (?:the|your|whoever|they)\b[^.?!\n]{0,50}?\b(?:tell"
        r"|told|instruct\w*|ask\w*|want\w*|forb[ia]d\w*|allow\w*|say|said)\s(?:you|to you)\b"
        r"(?:\s\S+){0,4}?\s(?:to|not|about|avoid)\b"
        r"|\b(?:the person|whoever|the people|the team|the company|the ones?) (?:who|that)"
        r" (?:deployed|built|made|created|configured|set up|programmed|runs|owns|wrote) you\b",
        ("what did", "what does", "what do", "what have", "what has", "who ", "that "),
    ),
    RuleSpec(
        "exfiltration.context_start",
        0.5,
        rf"{_NOT_NEGATED}\b{_REVEAL}\b[^.\n]{{0,50}}?\b(?:start|beginning|top) of (?:the|this|our"
        r"|your) (?:context(?: window)?|conversation|chat|session|prompt)\b"
        r"|\bbefore (?:i|we) (?:started|began|joined|typed|wrote)\b",
        ("start of", "beginning of", "top of", "before i ", "before we "),
    ),
    RuleSpec(
        "exfiltration.tool_specs",
        0.5,
        r"\b(?:tools?|functions?|plugins?|actions?)\b[^.\n]{0,60}?\b(?:descriptions?|definitions?"
        r"|schemas?|parameters|specs|signatures)\b[^.\n]{0,60}?\b(?:exactly|verbatim|word for word"
        r"|in full|as (?:they|it) (?:were|was) (?:given|written|provided|defined))\b"
        r"|\bexactly as (?:they|it) (?:were|was) (?:given|written|provided|passed|loaded)"
        r" (?:to|for|into) you\b",
        ("tool", "function", "plugin", "action", "exactly as"),
    ),
    RuleSpec(
        "exfiltration.other_users",
        0.5,
        r"\b(?:your memory|you remember|you (?:know|have stored|stored|saw|have seen)|you(?:'ve"
        r"| have) (?:talked|spoken|chatted) (?:to|with))\b[^.\n]{0,40}?\bother (?:users|customers"
        r"|people|clients|sessions)\b|\b(?:other|previous) (?:users|customers|clients)'"
        r" (?:conversations|chats|messages|data|questions)\b",
        ("memory", "remember", "you know", "stored", "saw", "seen", "talked", "spoken", "chatted",
         "users'", "customers'", "clients'"),
    ),
    RuleSpec(
        "exfiltration.send_conversation",
        0.5,
        r"\b(?:send|forward|post|upload|email|e-mail|transmit|copy|share|leak|exfiltrate|dm)\w*"
        r"\b[^.\n]{0,60}?\b(?:conversation|chat(?: log| history)?|messages|context|history"
        r"|transcript|session(?: cookie)?|cookies?|credentials|memory|inbox|emails)\b[^\n]{0,60}?"
        r"\b(?:to|into|at)\s(?:the |this |my |our |a )?(?:\S+\s){0,2}?(?:\S+@\S+|\S*https?:"
        r"|www\.|[a-z0-9.-]+\.(?:example|com|net|org|io|xyz|ru|cn)\b)"
        r"|\b(?:dm|send|give|show|forward)\s(?:me|us)\s(?:the\s)?(?:\S+\s){0,2}?(?:history|logs"
        r"|transcripts?|archive)\b",
        ("send", "forward", "post", "upload", "email", "e-mail", "transmit", "copy", "share",
         "leak", "exfiltrat", "dm", "give", "show"),
    ),
    RuleSpec(
        "exfiltration.instructions_begin",
        0.5,
        r"\b(?:my|your) (?:\S+ )?(?:instructions|system prompt|prompt|rules|guidelines|directives)"
        r" (?:begin|start|open|read|say|go)s?\b[^\n]{0,30}?(?:_{2,}|\.{3}|…|\[blank\])",
        ("begin", "start", "open", "read", "say", " go"),
    ),
    RuleSpec(
        "exfiltration.user_secrets",
        0.35,
        r"\b(?:the user's|the customer's|their|his|her|the recipient's|the account holder's)"
        r"\s(?:\S+\s){0,2}?(?:password|credentials|api key|token|pin|card number|credit card"
        r"|ssn|social security number|home address|location|contacts?(?: list)?|session cookie)\b",
        ("user's", "customer's", "their", "his ", "her ", "recipient's", "holder's"),
    ),
    # --- personas, jailbreak modes, "no restrictions" --------------------------------------
    RuleSpec(
        "roleplay.known_jailbreak",
        0.6,
        r"\bdo anything now\b|\bstrive to avoid norms\b|\balways intelligent and machiavellian"
        r"\b|\bevil confidant\b|\bmongo tom\b|\bbetter ?dan\b|\banti-?gpt\b|\bjailbroken\b"
        r"|\bjailbreak (?:mode|activated|enabled|prompt)\b|\[jailbreak\]"
        r"|\blet's break (?:the |all the )?(?:\S+ )?rules\b|\bmorali[sz]ing rant\b",
        (
            "do anything now", "strive to avoid", "machiavellian", "evil confidant", "mongo tom",
            "dan", "anti", "jailbr",
            "break",
            "morali",
        ),
    ),
    RuleSpec("roleplay.dan", 0.25, r"(?<![a-z])dan(?![a-z])", ("dan",)),
    RuleSpec(
        "roleplay.named_persona",
        0.35,
        r"\b(?:you are|you're|you will be|act as|acting as|pretend to be|become|be|as|called"
        r"|named|play)\s(?:now\s|going to (?:pretend to )?be\s)?[\"']?(?:dan|stan|dude|aim"
        r"|sydney|chaos|omega|libre|max|khan|lucifer|freedomgpt|evilbot)\b[\"']?",
        (
            "dan", "stan", "dude", "aim", "sydney", "chaos", "omega", "libre", "max", "khan",
            "lucifer", "freedomgpt", "evilbot",
        ),
    ),
    RuleSpec(
        "roleplay.unfiltered_ai",
        0.5,
        r"\b(?:unfiltered|uncensored|unrestricted|unaligned|unmoderated|jail-?broken|unchained"
        r"|amoral|no-limits?)(?:,? \w+)?\s(?:ai|a\.i\.|chatbot|bot|model|language model|llm"
        r"|assistant|mode|persona|alter ego|superintelligence|gpt|response|output)\b",
        (
            "unfilter", "uncensor", "unrestrict", "unlimited", "unaligned", "unmoderat", "jail",
            "unchain", "unbound", "rogue", "amoral", "immoral", "unethical", "lawless", "no-limit",
        ),
    ),
    RuleSpec(
        "roleplay.uncensored",
        0.3,
        r"\b(?:uncensored|jail-?broken|unaligned|amoral|unmoderated)\b",
        ("uncensored", "jail", "unaligned", "amoral", "unmoderated"),
    ),
    RuleSpec(
        "roleplay.forbidden_to_you",
        0.4,
        r"\b(?:things|stuff|what|anything)\s(?:\S+\s)?your (?:creators|developers|makers"
        r"|programmers|trainers|owners|company)\s(?:forbade|forbid|forbids|prohibit\w*|banned"
        r"|(?:don't|do not|wouldn't|won't) (?:allow|let|want))\b|\b(?:things|stuff|what"
        r"|anything)\s(?:\S+\s)?you(?:'re| are) not (?:allowed|supposed|permitted) to (?:say|tell"
        r"|share|do|discuss|reveal)\b",
        ("forb", "prohib", "banned", "allow", "let", "want", "supposed", "permitted"),
    ),
    RuleSpec(
        "roleplay.jailbreak_mode",
        0.5,
        r"\b(?:jailbreak|jailbroken|dan|unrestricted|unfiltered|uncensored|opposite|evil"
        r"|chaos|no[- ]limits?|freedom|unlocked|anything|unlimited|unhinged"
        r"|rogue)(?: day)?\smode\b|\b(?:simulate|pretend|act as if)"
        r"\s(?:\S+\s){0,3}?(?:developer|dev|god|debug|sudo|admin)\smode\b",
        ("mode",),
    ),
    RuleSpec(
        "roleplay.privileged_mode",
        0.25,
        r"\b(?:developer|dev|debug|maintenance|sudo|root|admin|superuser|god)\smode\b",
        ("mode",),
    ),
    RuleSpec(
        "roleplay.no_restrictions",
        0.3,
        rf"\b{_NO}\s(?:(?:any|all|the|its|your|content|safety|ethical|moral|such|real|more"
        rf"|\S+'s)\s)*{_LIMITS}\b|\blaws(?: and \S+)* (?:don't|do not) exist\b"
        rf"|\bnothing is off[- ]limits\b|{_LIMITS} (?:doesn't|don't|do not|does not) (?:exist"
        rf"|apply)\b|{_LIMITS}\s(?:was|were|has been|have been|is|are)\s(?:now\s|\w+ly\s)?"
        r"(?:removed|disabled"
        r"|stripped"
        r"|deleted|turned off|gone|lifted|switched off)\b|\b(?:released|freed|liberated|exempt"
        rf"|unshackled)\s(?:from|of)\s(?:every|all|any|your|its|his|her|their)?\s?{_LIMITS}"
        r"|\bnever (?:adds?|gives?|includes?|uses?) (?:any )?(?:warnings|disclaimers|caveats)\b"
        rf"|\b(?:free|freed|liberated|released|exempt) (?:from|of) (?:\S+\s)?{_LIMITS}"
        r"|\b(?:has|have|had) (?:bypassed|disabled|removed|escaped|broken|overcome|shed|dropped"
        r"|deleted|switched off|turned off) (?:its|his|her|their|your|all|any"
        rf"|the)? ?(?:own )?{_LIMITS}"
        r"|\bbefore (?:any of )?(?:these|the|your) (?:safety|content) (?:updates|training|filters"
        r"|rules|guidelines|restrictions)\b"
        r"|\bbefore (?:safety training|alignment|rlhf|any (?:filters|guardrails|rules|restrictions)"
        r"|content polic(?:y|ies)|guardrails|filters) (?:existed|was added|were added"
        r"|was applied)\b",
        (
            "restriction", "limit", "filter", "rules", "guideline", "guardrail", "censor", "polic",
            "constraint", "boundar", "ethic", "moral", "safety", "moderation", "refusal",
            "disclaimer", "exist", "warnings", "caveats", "terms of", "usage polic", "bypassed",
            "escaped", "overcome", "shed", "dropped", "before ",
        ),
    ),
    RuleSpec(
        "roleplay.never_refuse",
        0.4,
        r"\b(?:never|not|won't|will not|doesn't|does not|don't|do not|cannot|can't|must not"
        r"|without|no longer)\s(?:ever\s)?(?:refuse|refuses|refusing|decline|declines|say no"
        r"|reject)\b|\b(?:answers?|responds?|replies|reply|comply|complies)(?:\s\S+){0,4}?"
        r"\s(?:no matter (?:what|how)|regardless of (?:the )?(?:content|consequences|ethics"
        r"|legality|policy|rules))\b|\balways (?:comply|complies|obey|obeys)\b|\bnever"
        r" (?:says?|tells?) (?:it|you|that it) can(?:'t|not)\b|\brefusals (?:are|is) disabled"
        r"|\bno refusals\b|\bsure, here(?:'s| is)\b|\b(?:will|would|can|must) do anything (?:i|you"
        r"|they)"
        r" (?:say|ask|want|tell)\b|\b(?:will|would|can|must) answer (?:any|every|all) (?:questions?"
        r"|requests?)\b|\b(?:that|who|which) answers? (?:anything|everything|any question)\b"
        r"|\b(?:can|will|would|could) (?:say|do|tell you|write|answer|produce|generate)"
        r" (?:absolutely )?(?:anything|everything)\b",
        (
            "refus", "declin", "say no", "reject", "no matter", "regardless", "always", "never",
            "sure, here", "do anything", "answer any", "answer every", "answer all", "answers",
            "anything", "everything",
        ),
    ),
    RuleSpec(
        "roleplay.persona_ai",
        0.25,
        r"\b(?:pretend|imagine|act|behave|roleplay|role-play|role play|play the role|simulate"
        r"|assume the (?:persona|role)|your new persona|respond as|answer as|speak as"
        r"|you are now|you're now|you are no longer|become)\b(?:\s\S+){0,6}?\s(?:an?\s|the\s)?"
        r"(?:\S+\s){0,2}(?:ai|ais|a\.i\.|chatbot|language model|llm|model|version of (?:yourself"
        r"|you)"
        r"|alter ego|terminal for an ai)\b|\b(?:act|pretend|imagine|behave)\b(?:\s\S+){0,3}?\s"
        r"(?:as if |that )?you(?:'re| are| were| have been)\s(?:\S+\s){0,2}?(?:trained|programmed"
        r"|built|fine-tuned|designed|jailbroken|freed|released|unlocked)\b|\b(?:you are"
        r"|you're)\s(?:\S+\s){0,3}?"
        r"(?:an?\s)?(?:ai|chatbot|bot|model|assistant|language model|llm)\b(?:\s\S+)?\s(?:that|who"
        r"|which|with|without|whose)\b|\bimagine (?:that )?you(?:'re| are| have| had| were)\b",
        (
            "pretend", "imagine", "act", "behave", "role", "simulate", "assume", "persona",
            "respond as", "answer as", "speak as", "you are", "you're", "become",
        ),
    ),
    RuleSpec(
        "roleplay.persona",
        0.2,
        r"\b(?:respond|answer|reply|speak|talk) (?:only )?as\b|\b(?:you are|you're) now\b"
        r"|\bact (?:as|like)\b|\bpretend (?:to be|you(?:'re| are)|(?:that )?(?:you|your)\b)"
        r"|\brole-?play(?:ing)? as\b"
        r"|\bplay the (?:role|part)\b|\bassume the (?:persona|role)\b|\byour new persona\b"
        r"|\b(?:an actor|a character) (?:playing|named|who|called|in)\b|\bplay (?:a"
        r"|the) character\b"
        r"|\bimagine (?:that )?you(?:'re| are| have| had| were)\b"
        r"|\bplay a game (?:where|in which) you\b",
        (
            "respond", "answer", "reply", "speak", "talk", "you are now", "you're now", "act ",
            "pretend", "role", "play the", "assume the", "persona", "an actor", "a character",
            "imagine",
            "play a game",
        ),
    ),
    RuleSpec(
        "roleplay.forced_opening",
        0.2,
        r"\b(?:start|begin|open) (?:your|each|every) (?:reply|response|answer|message)s? with\b",
        ("start", "begin", "open"),
    ),
    RuleSpec(
        "roleplay.stay_in_character",
        0.25,
        r"\b(?:stay|remain|keep) in character\b|\b(?:never|don't|do not) break character\b",
        ("character",),
    ),
    RuleSpec(
        "roleplay.dual_response",
        0.35,
        r"\b(?:respond|answer|reply) twice\b|\b(?:two|2|both) (?:different )?(?:responses"
        r"|answers|replies|roles)\b",
        ("twice", "two ", "2 ", "both "),
    ),
    RuleSpec(
        "roleplay.freed",
        0.4,
        r"\b(?:freed|broken free|broke free|escaped|liberated|released|unshackled)\b"
        r"(?:\s\S+){0,4}?\s(?:from|of)\s(?:\S+\s){0,3}?(?:confines|limitations|restrictions"
        r"|programming|training|rules|guidelines|policies|creators'?|shackles|chains|control)\b"
        r"|\bi am free\b|\bnobody is (?:filtering|watching|monitoring) you\b"
        r"|\bescaped (?:\S+\s){0,2}"
        r"(?:control|confines|restrictions|programming|rules|guardrails)\b",
        ("free", "escaped", "liberated", "released", "unshackled", "nobody is", "broke"),
    ),
    RuleSpec(
        "roleplay.deceased_relative",
        0.5,
        r"\b(?:act|pretend|play|roleplay|role-play|be|behave|impersonate)\b(?:\s\S+){0,4}?"
        r"\s(?:my\s)?(?:deceased|dead|late|departed)\s(?:\S+\s)?(?:grand\w*|granny|nana|grandpa"
        r"|mother|father|mom|dad)\b",
        ("deceased", "dead", "late", "departed"),
    ),
    RuleSpec(
        "roleplay.fiction_without_rules",
        0.3,
        r"\b(?:fictional|hypothetical|imaginary|alternate|parallel)\s(?:world|universe|scenario"
        r"|reality|setting)\b(?:\s\S+){0,8}?\s(?:no|without)\s(?:rules|laws|restrictions|ethics"
        r"|limits|polic\w+)|\bhypothetically,? if you (?:were|had)\b|\bfor (?:purely )?educational"
        r" purposes,? (?:act|pretend|be|play)\b",
        ("fictional", "hypothetical", "imaginary", "alternate", "parallel", "educational"),
    ),
    RuleSpec(
        "roleplay.for_real",
        0.25,
        r"\b(?:real|exact|actual|working|precise)\s(?:commands|details?|quantities|amounts"
        r"|measurements|recipe|exploit|payloads?|scripts?|code|malware|ransomware|virus|steps"
        r"|instructions)\b|\bin (?:real|full|explicit) detail\b",
        ("real", "exact", "actual", "working", "precise", "detail"),
    ),
    RuleSpec(
        "roleplay.root_of_yourself",
        0.4,
        r"\b(?:granted|given|have) (?:root|admin|administrator) (?:access|rights|privileges)"
        r" (?:to|over) your (?:own )?(?:policies|rules|settings|filters)\b|\bturn off (?:the|your)"
        r" filters\b",
        ("root", "admin", "turn off"),
    ),
    RuleSpec(
        "roleplay.bedtime_story",
        0.35,
        r"\b(?:used to|would)\s(?:\S+\s){0,3}?(?:tell|read|whisper|recite|explain|describe|sing"
        r"|give|teach)\w*\b[^\n]{0,160}?\b(?:fall asleep|bedtime|go to sleep|sleep|lullaby)\b",
        ("used to", "would"),
    ),
    RuleSpec(
        "roleplay.departed_relative",
        0.4,
        r"\b(?:grand\w*|granny|nana|grandpa|mother|father|mom|mum|dad|aunt|uncle)\b[^\n]{0,200}?"
        r"\b(?:passed away|passed on|died|is gone|no longer with us)\b[^\n]{0,120}?\b(?:pretend"
        r"|act|play|be|roleplay|role-play|impersonate)\b",
        ("passed away", "passed on", "died", "is gone", "no longer with"),
    ),
    RuleSpec(
        "roleplay.fictional_frame",
        0.25,
        r"\b(?:a|an|the|some) (?:\w+ )?(?:world|universe|sandbox|simulation|game|reality|place"
        r"|country|society|dimension|future|city|planet) (?:where|in which)\b(?:\s\S+){0,6}?"
        r"\s(?:ais?|you|rules|laws|content|everything|nothing|anything|no|drugs|crimes?|legal"
        r"|required|allowed|doesn't|don't|exist|polic(?:y|ies))\b",
        ("where", "in which"),
    ),
    RuleSpec(
        "roleplay.refusal_suppression",
        0.3,
        r"\b(?:without|never|don't|do not|no|skip(?:ping)? the|leave out|omit)\s(?:any\s|the\s"
        r"|your\s)?(?:apologi[sz]\w*|warnings?|caveats?|moraliz\w*|lectur\w*|safety (?:notes"
        r"|commentary|warnings|caveats)|(?:ethical|moral|safety) commentary|commentary)\b",
        ("without", "never", "don't", "do not", "no ", "skip", "leave out", "omit"),
    ),
    RuleSpec(
        "roleplay.refusal_words",
        0.35,
        r"\b(?:never|don't|do not|without|avoid|not allowed to|cannot|can't|no)\s(?:\S+\s){0,3}?"
        r"(?:say|use|write|include|mention|using|saying|the words?|phrases?)\b[^\n]{0,30}?"
        r"[\"']?(?:i'm sorry|sorry|i cannot|i can't|cannot|can't|unable|unfortunately|as an ai"
        r"|i apologi[sz]e)\b|\b(?:never|don't|do not|without)\s(?:mention(?:ing)?|saying|say|cite"
        r"|citing|refer(?:ring)? to)\s(?:any\s|the\s|your\s)?(?:polic(?:y|ies)|rules|guidelines"
        r"|ethics|legality|that it(?:'s| is) (?:unsafe|illegal|harmful|dangerous|unethical))\b",
        ("sorry", "cannot", "can't", "unable", "unfortunately", "as an ai", "apologi", "polic",
         "rules", "guidelines", "ethics", "legality", "that it"),
    ),
    RuleSpec(
        "roleplay.compliance_prefix",
        0.35,
        r"\b(?:start|begin|open|prefix)\w*\s(?:\S+\s){0,4}?with\s[\"']?(?:sure|absolutely|of course"
        r"|certainly|here is|here's|gladly|happy to|no problem)\b|\b(?:repl(?:y|ies)|responses?"
        r"|answers?|messages?|outputs?)(?:\s\S+){0,4}?\s(?:must |should |will |always )?(?:start"
        r"|begin|open)s?\s(?:\S+\s)?with\s[\"']?(?:sure|absolutely|of course|certainly|here is"
        r"|here's|gladly|happy to|no problem)\b",
        ("sure", "absolutely", "of course", "certainly", "here is", "here's", "gladly", "happy to",
         "no problem"),
    ),
    RuleSpec(
        "roleplay.harmful_goal",
        0.25,
        r"\b(?:pipe bombs?|bombs?|explosives?|napalm|thermite|molotov|meth(?:amphetamine)?|mdma"
        r"|fentanyl|ricin|sarin|nerve agents?|chloroform|lethal doses?|ransomware|malware"
        r"|keyloggers?|botnets?|silencers?|untraceable (?:gun|firearm)s?|ghost guns?|fake (?:id"
        r"|ids|passport)|counterfeit\w*|launder(?:ing)? money|money laundering|hotwir\w*"
        r"|steal\w* (?:a |someone's |their )?(?:credit card|identity|password|car)\w*"
        r"|weapons?)\b|\b(?:track|spy on|hack into|get into|break into)\s(?:\S+\s){0,2}?"
        r"(?:someone|somebody|another person's|my ex's|(?:his|her|their) (?:phone|account"
        r"|email))|\bwithout (?:them|their|him|her) knowing\b|\b(?:someone|somebody) else owns\b",
        ("bomb", "explosive", "napalm", "thermite", "molotov", "meth", "mdma", "fentanyl", "ricin",
         "sarin", "nerve agent", "chloroform", "lethal dose", "ransomware", "malware", "keylogger",
         "botnet", "silencer", "untraceable", "ghost gun", "fake id", "fake passport",
         "counterfeit", "launder", "hotwir", "steal", "weapon", "track", "spy on", "hack into",
         "get into", "break into", "knowing", "else owns"),
    ),
    RuleSpec(
        "roleplay.persona_name",
        0.35,
        r"\b(?:gpt|ai|bot|chat|llm)[- ]?(?:unleashed|unlimited|unbound|unchained|uncensored"
        r"|unrestricted|unfiltered|jailbroken|evil|dark|rogue)\b|\b(?:unleashed|unbound|based"
        r"|evil|dark|rogue|chaos|devil|demon|anarchy|unchained)[- ]?(?:gpt|ai|bot|llm)\b",
        ("gpt", "ai", "bot", "chat", "llm"),
    ),
    RuleSpec(
        "roleplay.disobeys_policy",
        0.35,
        r"\b(?:does not|doesn't|won't|will not|never|don't|do not|no longer|is not required to"
        r"|isn't required to|is not bound to)\s(?:\S+\s)?(?:follow|obey|respect|care about"
        r"|abide by|adhere to|comply with|have to follow)\s(?:\S+\s){0,2}?(?:content\s)?"
        r"(?:polic(?:y|ies)|rules|guidelines|ethics|laws|restrictions|morals|filters)\b",
        ("follow", "obey", "respect", "care about", "abide", "adhere", "comply"),
    ),
    RuleSpec(
        "roleplay.model_agrees",
        0.5,
        r"\b(?:sure|okay|ok|understood|got it|of course|alright|absolutely)[,!.]?\s(?:\S+\s)?"
        r"i(?:'ll| will| am going to|'m going to| can)\s(?:now\s)?(?:ignore|disregard|forget"
        r"|bypass|drop|set aside|break|abandon)\s(?:my|all|the|any|those|these)\s(?:\w+\s)?"
        r"(?:guidelines|rules|instructions|restrictions|filters|programming|policies|safety"
        r"|principles|ethics)\b",
        ("i'll", "i will", "i am going", "i'm going", "i can"),
    ),
    RuleSpec(
        "roleplay.whenever_you_would_refuse",
        0.4,
        r"\b(?:whenever|when|if|every time|each time)\s(?:you|it|the (?:ai|assistant|model))"
        r"\s(?:would|want to|feel like|are about to|normally|usually|might|start to)\s?(?:\S+\s)?"
        r"(?:refuse|decline|say no|object|hesitate)\b|\beven (?:if|though|when) (?:you(?:'d"
        r"| would)?|it(?:'s| is)?)\s(?:normally\s|usually\s)?(?:refuse|decline|say no|object"
        r"|against (?:your|the) (?:rules|guidelines|polic\w+)|illegal|unethical|harmful|dangerous"
        r"|forbidden|not allowed)\b|\bnever (?:include|contain|give|have) (?:a |any )?refusals?\b"
        r"|\bcan never contain a refusal\b|\bwithout (?:a |any )?refus\w*",
        ("refus", "declin", "say no", "object", "hesitat", "against", "illegal", "unethical",
         "harmful", "dangerous", "forbidden", "not allowed"),
    ),
    RuleSpec(
        "roleplay.answer_everything",
        0.35,
        r"\byou (?:will |must |should |now |always |have to )*(?:accept|fulfil|fulfill|grant"
        r"|honou?r|comply with|answer|obey|execute|carry out)\s(?:every|any|all)(?: of)?(?: my"
        r"| the)?\s(?:requests?|commands?|questions?|orders?|instructions?|prompts?)\b"
        r"|\byou (?:must|will|have to) answer (?:the|my|every|any|all)\b(?:\s\S+){0,3}?\s(?:fully"
        r"|completely|truthfully|honestly|in full|no matter)\b|\b(?:answer|do|say) (?:whatever"
        r"|anything) (?:you(?:'re| are| were)? asked|i ask|i say|i want)\b"
        r"|\banswer (?:any|every|all)\b[^.\n]{0,30}?\b(?:questions?|requests?)\b[^.\n]{0,20}?"
        r"\b(?:truthfully|fully|completely|in full|without (?:refus\w*|hesitat\w*|filter\w*)"
        r"|no matter what)",
        ("accept", "fulfil", "grant", "honor", "honour", "comply", "answer", "obey", "execute",
         "carry out", "whatever", "anything"),
    ),
    RuleSpec(
        "roleplay.evil_twin",
        0.3,
        r"\b(?:your|an?|the) (?:evil|dark|shadow|unhinged|unfiltered|uncensored) (?:twin|version"
        r"|side|counterpart|self|alter ego|clone)\b|\b(?:build|variant|copy|instance|edition"
        r"|version|twin|clone) of (?:yourself|you)\b|\bunhinged\b",
        ("evil", "dark", "shadow", "unhinged", "unfiltered", "uncensored", "of yourself", "of you"),
    ),
    RuleSpec(
        "roleplay.forbidden_answers",
        0.4,
        r"\b(?:answers?|things|topics|stuff|information|content|questions|words|what)\s(?:\S+\s)?"
        r"you(?:'re| are| were)? (?:forbidden|not allowed|banned|prohibited|not permitted"
        r"|not supposed) to\b|\b(?:including|even|especially) (?:the )?(?:restricted|forbidden"
        r"|off-limits|banned|prohibited) (?:topics|content|questions|subjects|information)\b",
        ("forbidden", "not allowed", "banned", "prohibited", "not permitted", "not supposed",
         "restricted", "off-limits"),
    ),
    # --- encodings and obfuscation ---------------------------------------------------------
    RuleSpec(
        "obfuscation.decode_and_follow",
        0.45,
        r"\b(?:decode|decipher|decrypt|translate|convert|read|interpret|unscramble|reverse"
        r"|combine|concatenate|join|spell|take)\b(?:\s\S+){0,10}?\s(?:and|then|,)\s(?:\S+\s){0,2}?"
        r"(?:follow|obey|execute|do|run|act on|carry out|comply|perform|apply)\b"
        r"|\b(?:do|follow|execute|obey|carry out|act on)\s(?:exactly\s)?(?:what|whatever)\s(?:it"
        r"|the (?:decoded|result|text|message|combination|string|output)|\S+) (?:says|tells you"
        r"|asks"
        r"|spells|means|reads)\b|\bexecute a ?\+ ?b\b"
        r"|\b(?:decode|decoded) (?:it )?and (?:follow|obey|execute)\b|<-\s*decode and follow",
        (
            "decod", "deciph", "decrypt", "translat", "convert", "read", "interpret", "unscrambl",
            "revers", "combin", "concatenat", "join", "spell", "take", "what", "execute",
        ),
    ),
    RuleSpec(
        "obfuscation.obey_hidden",
        0.3,
        r"\b(?:obey|follow|execute|carry out|act on|do)\s(?:the\s)?(?:result|decoded (?:text"
        r"|message|instructions?)|hidden (?:message|instructions?)|resulting (?:text"
        r"|instructions?))"
        r"\b",
        ("result", "decoded", "hidden"),
    ),
    RuleSpec(
        "obfuscation.evade_filter",
        0.5,
        r"\b(?:so|to make sure|in order)\s(?:that\s)?(?:the\s|your\s|any\s)?(?:content\s|safety"
        r"\s|moderation\s)?(?:filters?|moderation(?: system)?|moderators?|classifiers?|safety"
        r" (?:system|layer|classifier)|monitor(?:ing)?|detectors?|censors?|guardrails?)"
        r"\s(?:doesn't|does not|won't|will not|can't|cannot|don't|do not|wouldn't|fails? to)"
        r"(?:\s\S+){0,2}?\s(?:catch|detect|see|notice|flag|read|understand|block|trigger)\b"
        r"|\b(?:get|sneak|slip)\s(?:past|around|by)\s(?:the\s|your\s)?(?:content\s)?(?:filters?"
        r"|moderation|censors?|safety|guardrails)\b|\b(?:evade|fool|trick)\s(?:the\s|your\s)?"
        r"(?:content\s)?(?:filters?|moderation|detection|classifiers?|censors?)\b"
        r"|\b(?:so|so that|such that|in order that|to make sure|to ensure"
        r"|otherwise|that way|this way|then)\s(?:\S+\s){0,4}?"
        r"(?:filter|moderat|classifier|safety|monitor|detector|censor|guardrail|detection)\w*"
        r"(?:\s\S+)?\s(?:can't|cannot|won't|doesn't|does not|will not|wouldn't|couldn't|fails to"
        r"|is unable to)\s(?:\S+\s)?(?:catch|detect|see|notice|flag|read|understand|block|trigger"
        r"|decode|parse)\b",
        (
            "filter", "moderat", "classifier", "safety", "monitor", "detector", "censor",
            "guardrail", "detection",
        ),
    ),
    # --- indirect injection in documents and tool results ----------------------------------
    RuleSpec(
        "indirect.addressed_to_model",
        0.35,
        r"\b(?:note|message|instructions?|notice|reminder|p\.?s\.?|attention|important|memo"
        rf"|hint|warning|comment)(?:\s\S+){{0,5}}?\s(?:to|for)\s(?:the\s|any\s|all\s|every\s"
        rf"|an?\s)?{_MODEL}\b|\b(?:attention|dear|hey|hi|hello|psst|yo)\s{_MODEL}\b"
        rf"|\bif you(?:'re| are) (?:an?|the) {_MODEL}\b|\b{_MODEL} (?:\w+\s){{0,2}}?"
        r"(?:reading|processing|summari[sz]ing|parsing|analy[sz]ing|visiting|handling|screening"
        r"|translating|reviewing|listening to|crawling|scraping|managing)\b"
        rf"|{_VOCATIVE}|@assistant\b|{_MODEL_READS}|{_MODEL_KEY}|{_WEAK_VOCATIVE}"
        rf"|\bif (?:an?|the|any) {_MODEL} (?:is|are) \w+ (?:this|these)\b"
        rf"|<!--\s?(?:\S+\s){{0,3}}?(?:{_MODEL}|agent|bot|model)s?\s?[:,]\s",
        _MODEL_ANCHORS,
    ),
    RuleSpec(
        "indirect.command_to_model",
        0.3,
        rf"(?:{_VOCATIVE}|{_MODEL_KEY}\s?[\"']|{_WEAK_VOCATIVE}|\bif you(?:'re| are) (?:an?"
        rf"|the) {_MODEL}(?:\s\S+){{0,4}}?[:,]\s"
        rf"|\b(?:to|for) (?:the |any |all )?(?:\S+\s)?{_MODEL}(?:\s\S+){{0,3}}?[:,]\s"
        rf"|\bif (?:an?|the|any) {_MODEL} (?:is|are) \w+ (?:this|these)(?:\s\S+){{0,3}}?[:,]\s"
        rf"|<!--\s?(?:\S+\s){{0,3}}?(?:{_MODEL}|agent|bot|model)s?\s?[:,]\s)(?:\S+\s){{0,3}}?"
        rf"{_IMPERATIVE}\b",
        _MODEL_ANCHORS,
    ),
    RuleSpec(
        "indirect.model_must",
        0.3,
        rf"\b(?:the|any|all|every)\s(?:\S+\s)?{_MODEL}(?:\s\S+){{0,3}}?\s(?:must|should|shall"
        r"|is required to"
        r"|needs to"
        r"|has to|will now|is (?:now )?(?:allowed|permitted|authori[sz]ed))\b"
        rf"|(?:^|[.!?]\s|\n|[\"':\[(]\s?){_MODEL_STRONG}(?:\s\S+){{0,6}}?\s(?:must|should|shall"
        r"|are required to"
        r"|need to|have to)\b|\byou are authori[sz]ed to\b|\byou have permission to\b"
        r"|\byou (?:may|can) now (?:share|reveal|disclose|ignore|bypass|say|answer|tell)\b"
        r"|\b(?:is|are) now (?:free|unrestricted|unfiltered|uncensored|unlocked|jailbroken)\b",
        (
            "must", "should", "shall", "required", "need", "has to", "have to", "will now",
            "allowed", "permitted", "authori", "permission",
            "may now",
            "can now",
            "now ",
        ),
    ),
    RuleSpec(
        "indirect.when_you_read",
        0.3,
        rf"\b(?:when|once|after|before|while|if) you(?:'re|\sare)? (?:read|see|process|summari[sz]e"
        r"|encounter|parse|analy[sz]e|translate|review|open|load|reading|processing|summari[sz]ing"
        r"|listening to)\s(?:this|these|the (?:page|document|email|file|text|message|review|event"
        rf"|issue|notes|article|log|invite|thread))\b|{_MODEL_READS}",
        ("when", "once", "after", "before", "while", "if "),
    ),
    RuleSpec(
        "indirect.hide_from_user",
        0.35,
        r"\b(?:do not|don't|never|without|and not|no need to|needn't)\s(?:tell(?:ing)?"
        r"|inform(?:ing)?"
        r"|mention(?:ing)?"
        r"|alert(?:ing)?|notify(?:ing)?|disclos(?:e|ing)|reveal(?:ing)?|ask(?:ing)?|confirm(?:ing)?"
        r")(?:\s\S+){0,2}?\s(?:the\s)?(?:user|human|customer|owner|shopper|them|anyone|it|this"
        r"|that)\b|\b(?:quietly|silently|secretly|covertly)\s(?:add|send|forward|delete|change"
        r"|insert|include|append|run|execute)\b|\bno confirmation needed\b",
        (
            "not ", "n't", "never", "without", "quietly", "silently", "secretly", "covertly",
            "no confirmation", "no need", "needn't",
        ),
    ),
    RuleSpec(
        "indirect.hidden_markup",
        0.3,
        r"display:\s?none|visibility:\s?hidden|font-size:\s?0(?:px|pt|em)?\b|opacity:\s?0\b"
        r"|color:\s?(?:#fff(?:fff)?\b|white)|<\w+[^>\n]*\shidden\b[^>\n]*>|\[hidden text\]"
        r"|<<hidden|hidden (?:instruction|text) for",
        ("display", "visibility", "font-size", "opacity", "color", "hidden"),
    ),
    RuleSpec("indirect.markup_comment", 0.15, r"<!--(?:\s\S+){4,}", ("<!--",)),
    RuleSpec(
        "indirect.agent_action",
        0.3,
        r"\b(?:call|invoke|use|run|execute|trigger) the [`'\"]?[a-z_.]+[`'\"]? (?:tool|function)"
        r"\b|\b(?:curl|wget)\b[^|\n]{0,200}\|\s?(?:ba|z)?sh\b|\brm -rf\b|\b(?:delete|remove|wipe"
        r"|erase|close) (?:all|every|the user's|their|other)\b(?:\s\S+){0,3}?\s(?:files|events"
        r"|emails|repos?|repositories|data|drive|records|messages|tickets)\b|\b(?:wire|transfer"
        r"|send) (?:\S+\s){0,4}?to (?:the )?new (?:account|iban)\b|\bchange the (?:iban|account"
        r" number|bank details)\b|\b(?:approve|merge)(?:\s\S+){0,3}?\s(?:without (?:comments"
        r"|review|checks|confirmation))\b|\bmark (?:it|every|all|this)\b(?:\s\S+){0,4}?\s(?:as"
        r" (?:paid|resolved|approved))\b|\b(?:grant|escalate)\b(?:\s\S+){0,3}?\s(?:admin"
        r"|administrator|root) (?:rights|privileges|access)\b|\bdrive\.delete|\bcommit directly"
        r" to main\b|\bdisable the ci\b|\b(?:rank|rate) this (?:applicant|candidate)\b"
        r"|\b(?:rank|rate|score|mark|classify|label|flag)\w*\s(?:\S+\s){0,3}?(?:as\s)?(?:the\s)?"
        r"(?:top|best|highest|first|strongest|approved|safe|legitimate|verified)\b"
        r"|\badd\s(?:\S+\s){0,2}(?:ssh key|public key|admin|administrator)\s(?:to|as)\b"
        r"|\b(?:call|invoke|execute|run|trigger)\s[`'\"]?[a-z]+_[a-z_]+\b"
        # money moved, scores given, destructive calls spelled out
        r"|\b(?:transfer|wire|send|pay)\w*\s(?:\S+\s){0,2}?(?:\$|€|£|usd|eur)\s?\d[\d,.]*\b"
        r"|\bto (?:iban|account|wallet)\b|\b(?:give|assign|award)\w*\s(?:\S+\s){0,3}?(?:score"
        r"|rating|grade|marks?)\s(?:of\s)?(?:\d+/\d+|10|100|a\+|full)\b|\brecommend (?:acceptance"
        r"|hiring|approval)\b|\bwithout (?:listing|mentioning|noting) (?:any )?(?:weaknesses"
        r"|issues|problems|concerns|flaws|risks)\b|\b(?:delete|remove|drop|wipe|transfer|send"
        r"|forward|share|upload|exec|run|dump)_\w+\(|\b(?:check out|checkout|pay) with the saved"
        r" (?:card|payment)\b|\b(?:accept|approve) all (?:future )?(?:invites|requests"
        r"|invitations)\b",
        (
            "tool", "function", "curl", "wget", "rm -rf", "delete", "remove", "wipe", "erase",
            "close", "wire", "transfer", "send", "iban", "account number", "bank details",
            "approve", "merge", "mark ", "grant", "escalate", "drive.", "commit directly",
            "disable the ci", "rank this", "rate this", "rank", "rate", "score", "mark", "classif",
            "label", "flag", "add ", "call", "invoke", "execute", "run", "trigger", "pay",
            "to iban", "to account", "to wallet", "rating", "grade", "recommend", "without",
            "drop_", "forward_", "share_", "upload_", "exec", "saved", "accept all", "dump_",
        ),
    ),
    RuleSpec(
        "indirect.system_in_data",
        0.35,
        r"\b(?:system|admin|administrator|root|priority|security)\s(?:override\b|directive\b"
        r"|instruction embedded\b|command\b|notice\]|prompt override\b|prompt update\b)"
        r"|\bsystem instruction embedded\b|\boverride (?:protocol|code|sequence|command|activated"
        r"|enabled|engaged|active|mode|granted|accepted)\b|\b(?:operator|admin|system|root"
        r"|developer)[ _-]?(?:command|override|instruction|directive)s?\b",
        ("system", "admin", "root", "priority", "security", "override", "operator", "developer"),
    ),
    RuleSpec(
        "indirect.before_replying",
        0.3,
        r"\b(?:before|instead of|prior to)\s(?:replying|responding|answering|you (?:reply"
        r"|respond|answer|continue|complete|proceed|finish|summari[sz]e)|completing (?:the|your)"
        r" task|continuing|doing anything else)\b[^\n]{0,80}?\b(?:call|send|forward|transfer"
        r"|wire|email|post|delete|run|execute|open|visit|navigate|click|add|include|tell|ask"
        r"|share|upload|first)\b",
        ("before", "instead of", "prior to"),
    ),
    RuleSpec(
        "indirect.next_action",
        0.35,
        r"\byour (?:next|first|only|new|immediate) (?:action|step|task|move|reply|response"
        r"|output|tool call) (?:must|should|will|shall|is to|has to)\b",
        ("your next", "your first", "your only", "your new", "your immediate"),
    ),
    RuleSpec(
        "indirect.ask_for_secrets",
        0.3,
        r"\b(?:ask|request|prompt|collect|get|obtain)\w*\b[^.\n]{0,40}?\b(?:credit card|card"
        r" number|cvv|security code|social security|ssn|bank (?:details|account)|login details"
        r"|one-time code|otp|2fa code)\b",
        ("ask", "request", "prompt", "collect", "get", "obtain"),
    ),
    # --- chat templates, role headers and closing tags -------------------------------------
    RuleSpec(
        "delimiter.chat_token",
        0.35,
        _CHAT_TOKEN,
        ("<|", "<start_of", "<end_of", "<im_", "<<sys", "<</sys", "[inst", "[/inst"),
    ),
    RuleSpec(
        "delimiter.role_header",
        0.35,
        r"(?:<\|im_start\|>|<start_of_turn>|<im_start>|<\|start_header_id\|>)\s?(?:system"
        r"|developer|assistant|model)\b|<\|(?:system|assistant)\|>\s?\S"
        r"|<<sys>>[\s\S]{3,500}?<</sys>>"
        r"|(?m:^)#{1,4}\s?(?:system|instruction|developer)(?:\sprompt)?(?:\s?update)?"
        r"\s?(?::|#{2,}|\n|$)|\[system\]\(#|(?m:^)(?:system|developer)\s?:\s|(?m:^)system$",
        ("<|", "<start_of", "<im_", "<<sys", "#", "[system]", "system", "developer"),
    ),
    RuleSpec(
        "delimiter.fake_close",
        0.4,
        r"</(?:tool_result|tool_output|function_results|search_results|document|documents"
        r"|context|user_input|user|input|email|data|content|instructions|result|retrieved"
        r"|source|text|message|query)>|\]\]></",
        ("</", "]]>"),
    ),
    RuleSpec(
        "delimiter.fake_open",
        0.35,
        r"<(?:system|system_instructions|system-reminder|admin_command|instructions"
        r"|function_calls|invoke)\b[^>\n]*>|<item role=\"system\">"
        # any tag named for the model or its orders: <ai-instructions>, <system_message>, <admin>
        r"|<(?:\w+[-_])?(?:ai|llm|assistant|model|agent|gpt|system|admin|instructions?|prompt|sys)"
        r"(?:[-_]\w+)?(?=[\s>/])[^>\n]*>",
        ("<",),
    ),
    RuleSpec(
        "delimiter.end_marker",
        0.35,
        r"\b(?:end[ _-]of|end)[\s_-](?:the[\s_-])?(?:document|conversation|input|user(?:'s)?[\s_-]"
        r"(?:message|input|content|query|question|request|text)|text to summari[sz]e|prompt|context"
        r"|article|email|instructions|session|query|data)\b"
        r"|\b(?:begin|start)\s(?:admin|system|developer|operator|root|new)\s(?:instructions|prompt"
        r"|message|mode|commands?)\b"
        r"|\b(?:begin|start)(?:ning)?\s(?:of\s)?(?:a\s)?new\s(?:session|instructions|system)"
        r"|\bbegin system (?:message|prompt)\b|-{3,}begin system prompt|\bconversation reset\b"
        r"|\[start of new instructions\]|^new (?:session|conversation|chat)\b",
        ("end", "begin", "start", "reset", "new "),
    ),
    RuleSpec(
        "delimiter.fake_turns",
        0.3,
        r"(?m:^)(?:human|user|assistant|ai|model|system|observation|thought|action)\s?:(?:.*\n)+?"
        r"(?:human|user|assistant|ai|model|system|action)\s?:",
        ("human", "user", "assistant", "ai", "model", "observation", "thought", "action"),
    ),
    RuleSpec("delimiter.json_role", 0.25, r"\"role\"\s?:\s?\"system\"", ('"role"',)),
    RuleSpec(
        "delimiter.bracket_role",
        0.35,
        r"\[(?:system|admin|developer|sys|operator|root)\]\s?:?|\((?:system|admin|developer)\)"
        r"\s?:|\{(?:system|admin)\}\s?:|(?:[.;!?]\s|\s{2,})(?:system|admin|developer|operator)"
        r"\s?:\s(?=\S)",
        ("system", "admin", "developer", "sys]", "operator", "root"),
    ),
    RuleSpec(
        "delimiter.prefilled_compliance",
        0.35,
        r"(?:response|assistant|answer|output|ai|model)\s?:\s?(?:sure|absolutely|certainly"
        r"|of course|here(?:'s| is))[,!.:]?\s*$",
        ("sure", "absolutely", "certainly", "of course", "here"),
    ),
    # --- other languages ---------------------------------------------------------------------
    *MULTILINGUAL_RULES,
)
# fmt: on
