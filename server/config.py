"""Server configuration: a YAML file, then environment overrides.

Environment variables ``MODEL_RUNTIME_<SECTION>__<KEY>`` override file values
(``MODEL_RUNTIME_GRPC__PORT=6000``). Inside the YAML, ``${NAME}`` is replaced by the
environment variable NAME, so provider keys stay out of the file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class GrpcConfig(BaseModel):
    host: str = "127.0.0.1"
    port: int = 50051
    max_message_bytes: int = 32 * 1024 * 1024
    max_concurrent_rpcs: int = 2048
    grace_seconds: float = 10.0
    # After health turns NOT_SERVING, keep serving this long so load balancers notice.
    drain_seconds: float = 2.0
    # Server processes sharing the ports through SO_REUSEPORT (one event loop each; gRPC
    # Python gets parallelism from processes, not threads). 0 = one per CPU core.
    workers: int = 1


class HttpConfig(BaseModel):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8080
    # Let HTTP callers send provider credentials in a header instead of using the config's.
    allow_request_credentials: bool = False


class EgressConfig(BaseModel):
    allow_private_networks: bool = False
    allowed_cidrs: list[str] = Field(default_factory=list)
    connect_timeout: float = 10.0
    read_timeout: float = 600.0
    max_connections: int = 512
    retries: int = 1
    # HTTP/2 to upstreams that offer it (httpx); off = aiohttp's HTTP/1.1 pool, ~10x less CPU per call.
    http2: bool = False


class LimitsConfig(BaseModel):
    max_message_bytes: int = 4 * 1024 * 1024
    max_messages: int = 2048
    max_tools: int = 256
    max_stop_sequences: int = 16
    max_stop_chars: int = 1000
    # Keys of model_parameters and of credentials (gRPC Structs, HTTP JSON objects).
    max_struct_keys: int = 256


class ProviderCredentials(BaseModel):
    credentials: dict[str, Any] = Field(default_factory=dict)


class Config(BaseModel):
    grpc: GrpcConfig = Field(default_factory=GrpcConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    egress: EgressConfig = Field(default_factory=EgressConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    # Extra provider folders (Dify layout) loaded after the built-in ones.
    provider_dirs: list[str] = Field(default_factory=list)
    # Server-side credentials, used by the OpenAI-compatible HTTP endpoint.
    providers: dict[str, ProviderCredentials] = Field(default_factory=dict)
    log_level: str = "INFO"


def _expand(value: Any) -> Any:
    if isinstance(value, str):
        return _ENV_REF.sub(lambda m: os.environ.get(m.group(1), ""), value)
    if isinstance(value, dict):
        return {k: _expand(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v) for v in value]
    return value


def _apply_env(data: dict[str, Any]) -> None:
    prefix = "MODEL_RUNTIME_"
    for key, value in os.environ.items():
        if not key.startswith(prefix) or "__" not in key:
            continue
        path = key[len(prefix):].lower().split("__")
        node = data
        for part in path[:-1]:
            node = node.setdefault(part, {})
        parsed = yaml.safe_load(value) if value else value
        node[path[-1]] = parsed


def load_config(path: str | Path | None = None) -> Config:
    data: dict[str, Any] = {}
    if path:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: the config must be a mapping")
        data = loaded
    data = _expand(data)
    _apply_env(data)
    return Config.model_validate(data)
