"""Azure OpenAI: the OpenAI dialect behind Azure's URLs and credentials.

Two URL styles: the classic per-deployment one (`/openai/deployments/{deployment}/...` with an
`api-version` query), where the deployment is the configured upstream model name, and the v1
API (`api_version: v1`, `/openai/v1/...`, model in the body as at OpenAI). Credentials are an
`api-key` header or a Microsoft Entra ID bearer token.
"""

from __future__ import annotations

from urllib.parse import quote

from edgeproxy.config import ProviderConfig
from edgeproxy.operations import Operation
from edgeproxy.providers.base import OutboundRequest, path_segment
from edgeproxy.providers.openai import OpenAIProvider


class AzureProvider(OpenAIProvider):
    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self._v1 = config.api_version == "v1"
        self._deployments = config.base_url + "/openai/deployments/"
        self._query = "?api-version=" + quote(config.api_version, safe="")
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
        path = operation.path if operation in self.operations else Operation.CHAT.path
        deployment = path_segment(request.model)
        return self._deployments + deployment + path + self._query
