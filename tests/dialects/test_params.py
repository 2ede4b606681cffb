"""The unsupported-parameter policy: drop and name, or reject; `n` is never silently dropped."""

from __future__ import annotations

import pytest

from edgeproxy.dialects.params import ParamPolicy
from edgeproxy.errors import ProxyError


def test_drop_records_each_field_once_in_order() -> None:
    policy = ParamPolicy("anthropic-up", "drop")
    for field in ("seed", "logit_bias", "seed"):
        policy.unsupported(field)
    assert policy.dropped == ["seed", "logit_bias"]


def test_reject_answers_400_naming_the_field_and_the_provider() -> None:
    policy = ParamPolicy("gemini-up", "reject")
    with pytest.raises(ProxyError) as caught:
        policy.unsupported("response_format.json_schema", "schemas need Gemini 2")
    assert caught.value.status == 400
    assert caught.value.param == "response_format"
    assert "gemini-up" in caught.value.message and "schemas need Gemini 2" in caught.value.message


@pytest.mark.parametrize("mode", ["drop", "reject"])
def test_several_choices_are_refused_whatever_the_mode(mode: str) -> None:
    policy = ParamPolicy("bedrock-up", mode)  # type: ignore[arg-type]
    with pytest.raises(ProxyError, match="n: not supported"):
        policy.unsupported("n")
    assert policy.dropped == []
