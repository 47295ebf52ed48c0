"""Options most HTTP protocols share: where the provider lives and which credential is the key."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

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
