"""Options most HTTP protocols share: where the provider lives and which credential is the key."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from engine._http.status import error_for_status
from engine.errors import RuntimeFault
from engine.options import ProtocolOptions


class HTTPOptions(ProtocolOptions):
    base_url: str | None = None  # default base URL of the provider's API
    base_url_credential: str | None = None  # credential variable that overrides base_url
    api_key_credential: str | None = None  # credential variable holding the API key
    validate_model: str | None = None  # the model a provider-credential check pings


class BaseURLByCredential(BaseModel):
    """A credential (a region, an "international endpoint" switch) picks the default base URL."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    credential: str
    values: dict[str, str]


class EndpointOptions(HTTPOptions):
    """Reaching a provider whose API is addressed like OpenAI's: ``{base}{path}/{endpoint}``
    with a bearer key (OpenAI and its compatibles, DashScope's native API, the retrieval APIs)."""

    base_url_append: str = ""  # appended to a caller-given base URL (OpenAI's form omits /v1)
    base_url_by_credential: BaseURLByCredential | None = None
    base_url_path: str = ""  # inserted before the endpoint; {model} = wire model id (Azure)
    model_credential: str | None = None  # credential holding the wire model id (Xinference UID)
    query: dict[str, str] = Field(default_factory=dict)  # static query parameters
    query_credentials: dict[str, str] = Field(default_factory=dict)  # {param: credential} (Azure api-version, MiniMax GroupId)
    headers: dict[str, str] = Field(default_factory=dict)  # static extra headers (OpenRouter HTTP-Referer)


class StatusEnvelope(BaseModel):
    """Errors a provider reports inside a 200 body as a business code (Spark's ``code``,
    MiniMax's ``base_resp.status_code``): where the code and message are, which codes mean
    success, and the HTTP status each other code stands for (default 400)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    code: str = "code"  # dotted path
    message: str = "message"  # dotted path
    ok: list[int | str] = Field(default_factory=lambda: list[int | str]([0]))
    statuses: dict[int | str, int] = Field(default_factory=dict)

    def body_error(self, obj: Any) -> RuntimeFault | None:
        """The runtime error a 200 body carries, or None when it is fine."""
        if not isinstance(obj, dict):
            return None
        code = _dig(obj, self.code)
        if code is None or str(code) in {str(c) for c in self.ok}:
            return None
        message = _dig(obj, self.message)
        status = {str(k): v for k, v in self.statuses.items()}.get(str(code), 400)
        return error_for_status(status, f"{message or 'error'} (code {code})",
                                in_body=True)


def _dig(obj: Any, path: str) -> Any:
    for key in path.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj
