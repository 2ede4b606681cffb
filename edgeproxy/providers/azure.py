"""Azure OpenAI: the OpenAI dialect behind Azure's URLs and credentials.

Two URL styles: the classic per-deployment one (`/openai/deployments/{deployment}/...` with an
`api-version` query), where the deployment is the configured upstream model name, and the v1
API (`api_version: v1`, `/openai/v1/...`, model in the body as at OpenAI). The Responses API
has one URL per resource in either style (`/openai/responses?api-version=...` in the classic
one, whose `api_version` must then be one that has it: 2025-03-01-preview or later), the
deployment named by the body's model; so do its stored answers (`/openai/responses/{id}`).
Credentials are an `api-key` header or a Microsoft Entra ID bearer token.
"""

from __future__ import annotations

from urllib.parse import quote

from edgeproxy.operations import Operation
from edgeproxy.providers.base import OutboundRequest, path_segment
from edgeproxy.providers.openai import OpenAIProvider
from edgeproxy.providers.settings import Given, KindRules, ProviderConfig, fixed_url


def _authenticated(given: Given) -> bool:
    return given.has_key or given.has_token


class AzureProvider(OpenAIProvider):
    rules = KindRules(
        fixed_url(""),
        frozenset({"max_tokens_field", "api_version", "bearer_token", "bearer_token_file"}),
        _authenticated,
        ("api_key", "required for this kind (give api_key, api_key_file or bearer_token)"),
        required_url="required for kind azure (https://<resource>.openai.azure.com)",
        dns_name=True,
        newer_max_tokens=True,
    )

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self._v1 = config.api_version == "v1"
        self._deployments = config.base_url + "/openai/deployments/"
        self._query = "?api-version=" + quote(config.api_version, safe="")
        self._responses = config.base_url + "/openai" + Operation.RESPONSES.path + self._query
        self._api = config.base_url + ("/openai/v1" if self._v1 else "/openai")
        if self._v1:
            self._urls = {
                op: config.base_url + "/openai/v1" + url.removeprefix(config.base_url)
                for op, url in self._urls.items()
            }

    def auth_headers(self) -> dict[str, str]:
        if self.config.api_key:
            return {"api-key": self.config.api_key.reveal()}
        if self.config.bearer_token:
            return {"authorization": "Bearer " + self.config.bearer_token.reveal()}
        return {}

    def url_for(self, request: OutboundRequest) -> str:
        if self._v1:
            return self._urls[request.operation]
        operation = request.operation
        if operation is Operation.RESPONSES:  # one URL for the resource, the model in the body
            return self._responses
        path = operation.path if operation in self.operations else Operation.CHAT.path
        deployment = path_segment(request.model)
        return self._deployments + deployment + path + self._query

    def api_url(self, path: str, query: str) -> str:
        """Under the resource's `/openai` (`/openai/v1`); the classic style's `api-version`
        comes from the configuration, never from the client's query."""
        url = self._api + path.removeprefix("/v1")
        if self._v1:
            return url + "?" + query if query else url
        kept = [p for p in query.split("&") if p and not p.lower().startswith("api-version=")]
        return url + self._query + "".join("&" + p for p in kept)
