"""The answers remembered for Responses follow-ups and stored-response calls: bounded, the
least recently named first forgotten, each with the key it was given to; in a pod, what this
worker does not know is asked of the others once."""

from __future__ import annotations

from edgeproxy.routing.affinity import Holder, ResponseAffinity

EAST, WEST = "openai/east", "openai/west"


def test_the_least_recently_named_answer_is_forgotten_first() -> None:
    affinity = ResponseAffinity(limit=2)
    affinity.remember("resp_1", EAST, None)
    affinity.remember("resp_2", WEST, None)
    assert affinity.holder("resp_1") == Holder(EAST, None)
    affinity.remember("resp_3", WEST, None)  # resp_1 was named since: resp_2 goes
    assert affinity.holder("resp_2") is None
    assert affinity.holder("resp_1") == Holder(EAST, None)
    assert affinity.holder("resp_3") == Holder(WEST, None)


def test_an_answer_is_held_with_the_key_it_was_given_to() -> None:
    affinity = ResponseAffinity()
    affinity.remember("resp_1", EAST, "team-a")
    assert affinity.holder("resp_1") == Holder(EAST, "team-a")


async def test_what_this_worker_does_not_know_is_asked_of_the_pod_once() -> None:
    asked: list[str] = []

    async def pod(answer_id: str) -> Holder | None:
        asked.append(answer_id)
        return Holder(WEST, "team-a") if answer_id == "resp_elsewhere" else None

    affinity = ResponseAffinity()
    affinity.ask_pod = pod
    affinity.remember("resp_here", EAST, None)
    assert await affinity.find("resp_here") == Holder(EAST, None)
    assert await affinity.find("resp_elsewhere") == Holder(WEST, "team-a")
    assert await affinity.find("resp_elsewhere") == Holder(WEST, "team-a")  # remembered now
    assert await affinity.find("resp_nowhere") is None
    assert asked == ["resp_elsewhere", "resp_nowhere"]


def test_a_deleted_answer_is_forgotten() -> None:
    affinity = ResponseAffinity()
    affinity.remember("resp_1", EAST, None)
    affinity.forget("resp_1")
    affinity.forget("resp_never_known")
    assert affinity.holder("resp_1") is None
