"""The answers remembered for Responses follow-ups: bounded, the least recently named first
forgotten, and only a string `previous_response_id` looked up."""

from __future__ import annotations

from typing import Any

from edgeproxy.routing.affinity import ResponseAffinity

EAST, WEST = "openai/east", "openai/west"


def follow_up(answer_id: Any) -> dict[str, Any]:
    return {"model": "m", "previous_response_id": answer_id}


def test_the_least_recently_named_answer_is_forgotten_first() -> None:
    affinity = ResponseAffinity(limit=2)
    affinity.remember("resp_1", EAST)
    affinity.remember("resp_2", WEST)
    assert affinity.owner(follow_up("resp_1")) == EAST  # named again: now the most recent
    affinity.remember("resp_3", WEST)
    assert affinity.owner(follow_up("resp_2")) is None
    assert affinity.owner(follow_up("resp_1")) == EAST
    assert affinity.owner(follow_up("resp_3")) == WEST


def test_requests_that_continue_nothing_known_have_no_owner() -> None:
    affinity = ResponseAffinity()
    affinity.remember("resp_1", EAST)
    assert affinity.owner({"model": "m"}) is None
    assert affinity.owner(follow_up(["resp_1"])) is None
    assert affinity.owner(follow_up("resp_unknown")) is None
