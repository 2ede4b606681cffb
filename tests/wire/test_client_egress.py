"""Which origins go through a proxy (HTTP(S)_PROXY and NO_PROXY), and proxy URLs."""

from __future__ import annotations

import base64

import pytest

from edgeproxy.wire.client import proxy_for
from edgeproxy.wire.egress import Proxy

P = "http://proxy.corp:3128"
Q = "http://other.corp:8080"


@pytest.mark.parametrize(
    ("origin", "env", "expected"),
    [
        # which variable
        ("https://api.openai.com", {}, None),
        ("https://api.openai.com", {"HTTPS_PROXY": P}, P),
        ("https://api.openai.com", {"https_proxy": P}, P),
        ("https://api.openai.com", {"HTTP_PROXY": P}, None),
        ("http://127.0.0.1:8001", {"HTTP_PROXY": P}, P),
        ("http://127.0.0.1:8001", {"http_proxy": P}, P),
        ("http://127.0.0.1:8001", {"HTTPS_PROXY": P}, None),
        ("https://api.openai.com", {"https_proxy": P, "HTTPS_PROXY": Q}, P),
        ("https://api.openai.com", {"https_proxy": " ", "HTTPS_PROXY": Q}, Q),
        ("ftp://files.example.com", {"HTTPS_PROXY": P, "HTTP_PROXY": P}, None),
        # names and domain suffixes
        ("https://api.openai.com", {"HTTPS_PROXY": P, "NO_PROXY": "api.openai.com"}, None),
        ("https://api.openai.com", {"HTTPS_PROXY": P, "NO_PROXY": "openai.com"}, None),
        ("https://api.openai.com", {"HTTPS_PROXY": P, "NO_PROXY": ".openai.com"}, None),
        ("https://openai.com", {"HTTPS_PROXY": P, "NO_PROXY": ".openai.com"}, None),
        ("https://api.openai.com", {"HTTPS_PROXY": P, "NO_PROXY": "*.openai.com"}, None),
        ("https://notopenai.com", {"HTTPS_PROXY": P, "NO_PROXY": "openai.com"}, P),
        ("https://openai.com.evil.test", {"HTTPS_PROXY": P, "NO_PROXY": "openai.com"}, P),
        ("https://API.OpenAI.com", {"HTTPS_PROXY": P, "NO_PROXY": "api.OPENAI.com"}, None),
        ("https://api.openai.com.", {"HTTPS_PROXY": P, "NO_PROXY": "openai.com"}, None),
        ("https://api.openai.com", {"HTTPS_PROXY": P, "NO_PROXY": " a.test , openai.com "}, None),
        ("https://api.openai.com", {"HTTPS_PROXY": P, "NO_PROXY": "a.test,,b.test"}, P),
        ("https://api.openai.com", {"HTTPS_PROXY": P, "NO_PROXY": "*"}, None),
        # ports
        ("https://api.openai.com", {"HTTPS_PROXY": P, "NO_PROXY": "api.openai.com:443"}, None),
        ("https://api.openai.com", {"HTTPS_PROXY": P, "NO_PROXY": "api.openai.com:8443"}, P),
        ("http://llm.local:8001", {"HTTP_PROXY": P, "NO_PROXY": "llm.local:8001"}, None),
        ("http://llm.local:8001", {"HTTP_PROXY": P, "NO_PROXY": "llm.local:80"}, P),
        ("http://llm.local:8001", {"HTTP_PROXY": P, "NO_PROXY": "llm.local:x"}, P),
        # IP addresses and CIDR ranges
        ("http://10.1.2.3:8001", {"HTTP_PROXY": P, "NO_PROXY": "10.1.2.3"}, None),
        ("http://10.1.2.3:8001", {"HTTP_PROXY": P, "NO_PROXY": "10.1.2.4"}, P),
        ("http://10.1.2.3:8001", {"HTTP_PROXY": P, "NO_PROXY": "10.0.0.0/8"}, None),
        ("http://11.1.2.3:8001", {"HTTP_PROXY": P, "NO_PROXY": "10.0.0.0/8"}, P),
        ("http://10.1.2.3:8001", {"HTTP_PROXY": P, "NO_PROXY": "10.1.2.3:8001"}, None),
        ("http://10.1.2.3:8001", {"HTTP_PROXY": P, "NO_PROXY": "10.0.0.0/33"}, P),
        ("http://llm.local:8001", {"HTTP_PROXY": P, "NO_PROXY": "10.0.0.0/8"}, P),
        ("http://[::1]:8001", {"HTTP_PROXY": P, "NO_PROXY": "::1"}, None),
        ("http://[::1]:8001", {"HTTP_PROXY": P, "NO_PROXY": "[::1]:8001"}, None),
        ("http://[::1]:8001", {"HTTP_PROXY": P, "NO_PROXY": "[::1]:9"}, P),
        ("http://[fd00::5]:8001", {"HTTP_PROXY": P, "NO_PROXY": "fd00::/8"}, None),
        ("http://[fe80::5]:8001", {"HTTP_PROXY": P, "NO_PROXY": "fd00::/8"}, P),
        # which NO_PROXY variable
        ("https://api.openai.com", {"HTTPS_PROXY": P, "no_proxy": "openai.com"}, None),
        (
            "https://api.openai.com",
            {"HTTPS_PROXY": P, "no_proxy": "a.test", "NO_PROXY": "openai.com"},
            P,
        ),
    ],
)
def test_proxy_for(origin: str, env: dict[str, str], expected: str | None) -> None:
    assert proxy_for(origin, env) == expected


@pytest.mark.parametrize(
    ("url", "host", "port", "credentials"),
    [
        ("http://proxy.corp:3128", "proxy.corp", 3128, None),
        ("proxy.corp:3128", "proxy.corp", 3128, None),
        ("http://proxy.corp", "proxy.corp", 80, None),
        ("http://user:p%40ss@proxy.corp:3128", "proxy.corp", 3128, b"user:p@ss"),
        ("http://user@proxy.corp:3128", "proxy.corp", 3128, b"user:"),
        ("http://[fd00::1]:3128", "fd00::1", 3128, None),
    ],
)
def test_proxy_url(url: str, host: str, port: int, credentials: bytes | None) -> None:
    proxy = Proxy(url)

    assert (proxy.host, proxy.port) == (host, port)
    expected = None if credentials is None else "Basic " + base64.b64encode(credentials).decode()
    assert proxy.authorization == expected


def test_proxy_repr_hides_credentials() -> None:
    assert repr(Proxy("http://user:hunter2@proxy.corp:3128")) == "Proxy(proxy.corp:3128)"


@pytest.mark.parametrize(
    "url", ["https://user:hunter2@proxy.corp", "socks5://user:hunter2@proxy.corp", "http://"]
)
def test_unsupported_proxy_url_is_refused_without_its_credentials(url: str) -> None:
    with pytest.raises(ValueError) as raised:
        Proxy(url)

    assert "hunter2" not in str(raised.value)
