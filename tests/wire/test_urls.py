"""Upstream URLs from the config: the forms every parser reads alike, and each refusal."""

from __future__ import annotations

import pytest

from edgeproxy.wire.urls import proxy_url_problem, url_problem


@pytest.mark.parametrize(
    "url",
    [
        "https://api.openai.com/v1",
        "https://api.anthropic.com",
        "http://127.0.0.1:8080/v1",
        "http://[::1]:8000/v1",
        "http://vllm_gateway:8000/v1",  # an underscore, as container names have
        "https://api.openai.com./v1",  # a fully qualified name
        "HTTPS://API.OPENAI.COM/v1",
        "https://llm.example/v1/",
        "https://llm.example/openai/deployments%2Fx",  # percent-encoding in the path is data
    ],
)
def test_ordinary_base_urls_are_accepted(url: str) -> None:
    assert url_problem(url, base=True) is None


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("api.openai.com", 'expected an http:// or https:// URL, got "api.openai.com"'),
        ("ftp://files.example", "expected an http:// or https:// URL"),
        ("http:/llm.example", "expected an http:// or https:// URL"),
        ("file:///etc/passwd", "expected an http:// or https:// URL"),
        ("", "empty string"),
        ("https://api.openai.com@127.0.0.1/v1", "credentials"),
        ("https://user:pass@llm.example/v1", "credentials"),
        ("https://llm.example#@127.0.0.1/v1", "fragment"),
        ("https://llm.example/v1#", "fragment"),
        ("https://llm.example/v1?api-version=1", "query string"),
        ("https://llm.example/v1?", "query string"),
        ("https://llm.example /v1", "whitespace"),
        ("https://llm.example\t/v1", "control character"),
        ("https://llm.example\r\nHost: evil/v1", "control character"),
        ("https://bücher.example/v1", "non-ASCII"),
        ("https://llm.example\\@127.0.0.1/v1", "backslash"),
        ("https://127.0.0.1%2f.llm.example", "percent-encoding"),
        ("https://llm%2eexample/v1", "percent-encoding"),
        ("https://127.1/v1", "dotted-quad"),
        ("https://0x7f.0.0.1/v1", "dotted-quad"),
        ("https://2130706433/v1", "dotted-quad"),
        ("https://127.000.000.001/v1", "dotted-quad"),
        ("https://-llm.example/v1", "invalid host name"),
        ("https://llm..example/v1", "invalid host name"),
        ("https://llm.example:99999/v1", "invalid port"),
        ("https://llm.example:80a/v1", "invalid port"),
        ("http://[::1/v1", "invalid IPv6"),
        ("http://[not-an-address]/v1", "invalid IPv6"),
        ("https:///v1", "no host"),
        ("https://llm.example/v1/../admin", "dot segment"),
        ("https://llm.example/v1/%2E%2E/admin", "dot segment"),
    ],
)
def test_base_urls_that_parsers_could_read_differently_are_refused(url: str, problem: str) -> None:
    found = url_problem(url, base=True)
    assert found is not None and problem in found


@pytest.mark.parametrize(
    ("url", "accepted"),
    [
        ("https://contoso.openai.azure.com", True),
        ("https://contoso-eu.openai.azure.com", True),
        ("http://127.0.0.1:8443", True),  # a dotted quad is a DNS name's syntax too
        ("https://contoso_eu.openai.azure.com", False),
        ("https://[::1]:8443", False),
    ],
)
def test_an_azure_host_must_be_a_dns_name(url: str, accepted: bool) -> None:
    assert (url_problem(url, base=True, dns_name=True) is None) is accepted


def test_a_query_is_refused_in_a_base_url_only() -> None:
    assert url_problem("https://guard.example/check?v=2") is None
    assert url_problem("https://guard.example/check?v=2", base=True) is not None


def test_a_refusal_never_quotes_a_url_that_holds_credentials() -> None:
    problem = url_problem("ftp://user:hunter2-secret@files.example")
    assert problem is not None and "hunter2" not in problem


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://egress:3128", None),
        ("egress:3128", None),  # the scheme may be left out
        ("http://user:p%40ss@egress:3128", None),  # credentials: the Proxy-Authorization
        ("http://egress:3128/", None),
        ("socks5://egress:1080", "only http"),
        ("https://egress:3128", "only http"),
        ("http://egress:3128/path", "nothing after it"),
        ("http://egress:3128?x=1", "nothing after it"),
        ("http://egress:3128#frag", "fragment"),
        ("http://egress%2f:3128", "percent-encoding"),
        ("http://egress :3128", "whitespace"),
        ("http://:3128", "no host"),
        ("http://egress:port", "invalid port"),
    ],
)
def test_an_egress_proxy_is_a_host_and_port_with_optional_credentials(
    url: str, problem: str | None
) -> None:
    found = proxy_url_problem(url)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found
