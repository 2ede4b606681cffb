"""The rules every provider shares: how a name goes into a URL path, which client headers
travel upstream."""

from __future__ import annotations

import pytest

from edgeproxy.errors import ProxyError
from edgeproxy.providers.base import REWRITING, forwarded_headers, path_segment


@pytest.mark.parametrize(
    ("name", "segment"),
    [
        ("gpt-4o-prod", "gpt-4o-prod"),
        (
            "anthropic.claude-3-7-sonnet-20250219-v1:0",
            "anthropic.claude-3-7-sonnet-20250219-v1%3A0",
        ),
        ("../x", "..%2Fx"),
        ("a?b#c@d", "a%3Fb%23c%40d"),
        ("%2e%2e", "%252e%252e"),
        ("x\r\nHost: evil", "x%0D%0AHost%3A%20evil"),
        ("...", "..."),
    ],
)
def test_a_name_becomes_exactly_one_escaped_path_segment(name: str, segment: str) -> None:
    assert path_segment(name) == segment


@pytest.mark.parametrize("name", ["", ".", "..", "\uff0e\uff0e", "\u2024"])
def test_a_name_that_is_a_dot_segment_is_refused(name: str) -> None:
    with pytest.raises(ProxyError) as raised:
        path_segment(name)
    assert (raised.value.status, raised.value.param) == (400, "model")


def test_headers_that_rewrite_where_a_request_lands_stay_behind() -> None:
    client = {name: "http://127.0.0.1:1/x" for name in REWRITING} | {"x-trace": "t"}
    assert forwarded_headers(client, {"authorization": "Bearer k"}) == {
        "x-trace": "t",
        "authorization": "Bearer k",
    }


def test_an_expectation_the_listener_met_stays_behind() -> None:
    """The listener answered `Expect: 100-continue` and read the whole body: the provider is
    sent it at once, with nothing to wait for."""
    client = {"expect": "100-continue", "openai-organization": "org-1"}
    assert forwarded_headers(client, {}) == {"openai-organization": "org-1"}
