"""The answers remembered for Responses follow-ups and stored-response calls: bounded, the
least recently named first forgotten, each with the key it was given to, and only a string
`previous_response_id` looked up."""

from __future__ import annotations

from typing import Any

from edgeproxy.routing.affinity import Holder, ResponseAffinity

EAST, WEST = "openai/east", "openai/west"


def follow_up(answer_id: Any) -> dict[str, Any]:
    return {"model": "m", "previous_response_id": answer_id}


def test_the_least_recently_named_answer_is_forgotten_first() -> None:
    affinity = ResponseAffinity(limit=2)
    affinity.remember("resp_1", EAST, None)
    affinity.remember("resp_2", WEST, None)
    assert affinity.continued(follow_up("resp_1")) == ("resp_1", Holder(EAST, None))
    affinity.remember("resp_3", WEST, None)  # resp_1 was named since: resp_2 goes
    assert affinity.holder("resp_2") is None
    assert affinity.holder("resp_1") == Holder(EAST, None)
    assert affinity.holder("resp_3") == Holder(WEST, None)


def test_an_answer_is_held_with_the_key_it_was_given_to() -> None:
    affinity = ResponseAffinity()
    affinity.remember("resp_1", EAST, "team-a")
    assert affinity.holder("resp_1") == Holder(EAST, "team-a")


def test_requests_that_continue_nothing_continue_no_answer() -> None:
    affinity = ResponseAffinity()
    affinity.remember("resp_1", EAST, None)
    assert affinity.continued({"model": "m"}) is None
    assert affinity.continued(follow_up(["resp_1"])) is None
    assert affinity.continued(follow_up("resp_unknown")) == ("resp_unknown", None)


def test_a_deleted_answer_is_forgotten() -> None:
    affinity = ResponseAffinity()
    affinity.remember("resp_1", EAST, None)
    affinity.forget("resp_1")
    affinity.forget("resp_never_known")
    assert affinity.holder("resp_1") is None
