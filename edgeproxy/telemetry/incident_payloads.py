"""What a webhook is sent when an incident opens or resolves, in one of two formats:

- `observatory`: the proxy's event envelope, `{"schema": "edgeproxy.event/1", "type":
  "incident.opened" | "incident.resolved", "time": ..., "source": "edgeproxy", "data":
  <the incident as /admin/incidents shows it>}`;
- `slack`: a Slack-compatible message (incoming webhooks, and the chat tools that accept
  them): `text` for notifications and clients without blocks, `blocks` for the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edgeproxy.telemetry.incidents import Change, describe

SCHEMA = "edgeproxy.event/1"
# Slack refuses a section with more than 10 fields, and a header longer than 150 characters.
_MAX_FIELDS = 10
_MAX_HEADER = 150

Render = Callable[[Change], dict[str, Any]]


def observatory(change: Change) -> dict[str, Any]:
    view = change.incident.view()
    time = view["opened_at"] if change.event == "opened" else view["resolved_at"]
    return {
        "schema": SCHEMA,
        "type": f"incident.{change.event}",
        "time": time,
        "source": "edgeproxy",
        "data": view,
    }


def _escaped(text: str) -> str:
    """Text for Slack's mrkdwn, where &, < and > are control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack(change: Change) -> dict[str, Any]:
    incident = change.incident
    view = incident.view()
    resolved = change.event == "resolved"
    state = "RESOLVED" if resolved else incident.severity.upper()
    title = f"[{state}] {incident.kind} on {incident.scope} {incident.name}"
    words = describe(incident.kind, incident.evidence)
    if resolved:
        words = f"back to normal: {words}; at worst {describe(incident.kind, incident.worst)}"
    fields = [
        {"type": "mrkdwn", "text": _escaped(f"*{name}*\n{value}")}
        for name, value in list(incident.evidence.items())[:_MAX_FIELDS]
    ]
    context = f"{incident.id} · opened {view['opened_at']}"
    if resolved:
        context += f" · resolved {view['resolved_at']}"
    if incident.responses:
        context += " · responses: " + ", ".join(incident.responses)
    action = "*Suggested action*: " + _escaped(incident.suggested_action)
    return {
        "text": _escaped(f"{title}: {words}"),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title[:_MAX_HEADER]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": _escaped(words)}},
            {"type": "section", "fields": fields},
            {"type": "section", "text": {"type": "mrkdwn", "text": action}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": _escaped(context)}]},
        ],
    }


RENDERERS: dict[str, Render] = {"observatory": observatory, "slack": slack}
