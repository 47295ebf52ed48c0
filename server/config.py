"""Server configuration: a YAML file, then environment overrides, checked strictly.

Environment variables ``MODEL_RUNTIME_<SECTION>__<KEY>`` override file values
(``MODEL_RUNTIME_GRPC__PORT=6000``; top-level keys: ``MODEL_RUNTIME_LOG_LEVEL``). Inside the
YAML, ``${NAME}`` is replaced by the environment variable NAME, so provider keys stay out of
the file.

Why strict: a typo (``egress.allowed_cidr``, a ``grcp:`` section, ``MODEL_RUNTIME_EGRES__...``)
used to start the server on defaults without a word, which for the egress allowlist or the
limits is a silent security or capacity change. Unknown keys now raise :class:`ConfigError`
naming the key and the nearest valid one; ``python -m server`` prints it and exits.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from engine._http.guard import EgressPolicy, ip_literal
from engine.plugins import LoadOptions

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
ENV_PREFIX = "MODEL_RUNTIME_"
# Variables under the prefix that hold data, not config overrides (the default home of the
# stored-credentials encryption keys; without this the documented set-up refused to start).
NOT_OVERRIDES = frozenset({"MODEL_RUNTIME_ENCRYPTION_KEYS"})


class ConfigError(ValueError):
    """A configuration mistake, with a message meant for the operator (no traceback)."""


def check_base_url(url: str) -> str:
    """A plain http(s) URL with a host and no ``user:password@`` (the trailing slash dropped)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ValueError("is not a valid URL") from None
    # The value is never echoed: it may carry a password.
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL with a host")
    if "@" in parts.netloc or any(c.isspace() for c in url) or parts.query or parts.fragment:
        raise ValueError("must be a plain URL (no user:password@, spaces, query or fragment)")
    return url.rstrip("/")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GrpcConfig(_Section):
    host: str = "127.0.0.1"
    port: int = 50051
    max_message_bytes: int = 32 * 1024 * 1024
    max_concurrent_rpcs: int = 2048
    # One budget for the whole stop, from SIGTERM to exit, shared by gRPC and HTTP.
    grace_seconds: float = 10.0
    # After health turns NOT_SERVING, keep serving this long so load balancers notice
    # (the first part of grace_seconds, not added to it).
    drain_seconds: float = 2.0
    # Server processes sharing the ports through SO_REUSEPORT (one event loop each; gRPC
    # Python gets parallelism from processes, not threads). 0 = one per CPU core.
    workers: int = 1
    # With several workers, pin each to its own CPU (when there are no more workers than usable
    # CPUs): a worker's threads hand calls to one another, cheaper within one core.
    pin_workers: bool = True
    # Run the server's threads under Linux's SCHED_BATCH policy (issue 15). gRPC's own threads
    # (poller, EventEngine, the call pool) wake for every call and hand it on; under the normal
    # policy each wakeup preempted the busy event-loop thread (grpc.aio: ~16 forced context
    # switches per unary call; behind the bridge 0.66 vs 0.51 ms CPU per call without/with it).
    sched_batch: bool = True
    # How gRPC is served: "threads", the synchronous grpc.server whose pool threads hand each
    # call to the event loop once (server/bridge.py: about half the CPU per call), or "aio",
    # grpc.aio on the event loop itself.
    mode: Literal["threads", "aio"] = "threads"
    # Connection hygiene (gRPC core channel arguments).
    max_connections: int = 4096
    max_concurrent_streams: int = 256
    max_connection_idle_seconds: float = 300.0
    max_connection_age_seconds: float = 3600.0
    max_connection_age_grace_seconds: float = 600.0
    min_ping_interval_seconds: float = 10.0
    keepalive_permit_without_calls: bool = True


class HttpConfig(_Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8080
    # Let HTTP callers send provider credentials in a header instead of using the config's.
    allow_request_credentials: bool = False
    # Browser origins allowed to call the endpoint (CORS); requests with any other Origin get 403.
    cors_allowed_origins: list[str] = Field(default_factory=list)
    # Connection hygiene.
    max_connections: int = 1024
    header_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 60.0
    keepalive_timeout_seconds: float = 15.0
    max_header_bytes: int = 16384
    max_headers: int = 100


class EgressConfig(_Section):
    allow_private_networks: bool = False
    allowed_cidrs: list[str] = Field(default_factory=list)
    connect_timeout: float = 10.0
    read_timeout: float = 600.0
    max_connections: int = 512
    retries: int = 1
    # HTTP/2 to upstreams that offer it (httpx); off = aiohttp's HTTP/1.1 pool, ~10x less CPU per call.
    http2: bool = False
    # Bytes an upstream reply may carry (after decompression); past them the call fails UNAVAILABLE.
    max_reply_bytes: int = 16 * 1024 * 1024  # a whole body, and one stream event
    max_stream_bytes: int = 64 * 1024 * 1024  # everything one stream delivers
    max_audio_reply_bytes: int = 64 * 1024 * 1024  # the same for speech (TTS, speech-to-text) calls
    max_audio_stream_bytes: int = 256 * 1024 * 1024


class LimitsConfig(_Section):
    max_message_bytes: int = 4 * 1024 * 1024
    max_messages: int = 2048
    max_tools: int = 256
    max_stop_sequences: int = 16
    max_stop_chars: int = 1000
    # Keys of model_parameters and of credentials (gRPC Structs, HTTP JSON objects).
    max_struct_keys: int = 256


class ObservabilityConfig(_Section):
    # Prometheus metrics (GenAI conventions, the runtime's own, gRPC server); off: no observer cost.
    metrics: bool = True
    # Serve /metrics on its own port (metrics_host:metrics_port) instead of the HTTP port.
    metrics_admin: bool = False
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9464
    # Distinct model names per label before new ones count as "_other" (bounded cardinality).
    max_model_labels: int = 200
    # Per caller key (auth) calls, tokens and cost, labelled by the key's name; off by default.
    caller_key_labels: bool = False
    max_caller_key_labels: int = 100
    # OpenTelemetry traces over OTLP/gRPC; off: the SDK is not even imported.
    tracing: bool = False
    otlp_endpoint: str = "http://127.0.0.1:4317"
    otlp_insecure: bool = True
    otlp_timeout_seconds: float = 10.0
    service_name: str = "model-runtime"
    # One log line per call; "text" (key=value) or "json".
    call_log: bool = True
    log_format: Literal["text", "json"] = "text"
    # Prompt and completion text in spans and call log lines (scrubbed of credential values); off by default.
    capture_content: bool = False
    capture_content_max_chars: int = Field(default=16384, ge=64)


class AuthConfig(_Section):
    # Require a caller key (``authorization: Bearer <key>``) on every call of both front doors.
    enabled: bool = False
    # With auth off, binding a non-loopback address refuses to start unless this is true.
    allow_unauthenticated_non_loopback: bool = False
    # Seconds between checks for changed keys / stored credentials (revocation reaches every process).
    refresh_seconds: float = 0.5
    # AES-GCM keys for stored credentials: "id:base64key,id2:base64key" (the first encrypts).
    # Read from the environment variable named here, else from encryption_keys_file.
    encryption_keys_env: str = "MODEL_RUNTIME_ENCRYPTION_KEYS"
    encryption_keys_file: str = ""
    # Usage ledger: rows buffered and written in batches off the hot path.
    ledger_enabled: bool = True
    ledger_batch_size: int = 500
    ledger_flush_seconds: float = 1.0


class StorageConfig(_Section):
    # Directory for the embedded SQLite database (created on first run).
    data_dir: str = "data"
    # SQLAlchemy async URL, e.g. postgresql+asyncpg://user@host/db; empty = sqlite under data_dir.
    url: str = ""
    # Redis URL for rate-limit and budget counters shared by replicas; empty = in-process memory.
    redis_url: str = ""


class TlsConfig(_Section):
    # PEM server certificate and key; both set = TLS on gRPC and HTTPS on the HTTP endpoint.
    cert_file: str = ""
    key_file: str = ""
    # PEM CA bundle: when set, client certificates are requested (mTLS) and verified against it.
    client_ca_file: str = ""
    # Refuse callers that present no client certificate (only with client_ca_file). The gRPC port
    # verifies client certificates only when this is true (grpcio cannot ask for one optionally).
    require_client_cert: bool = False


class RoutingConfig(_Section):
    # name -> route (engine/routing/spec.py): deployments, strategy, retry, cooldown. A call names
    # a route instead of a model target (gRPC ``route``; HTTP ``model``).
    routes: dict[str, Any] = Field(default_factory=dict)
    # Share cooldowns through storage.redis_url (when set), so replicas avoid the same deployment.
    shared_cooldowns: bool = True
    # Seconds between reads of the shared cooldown state (a cooldown reaches other replicas this fast).
    poll_seconds: float = 0.25

    @model_validator(mode="after")
    def _routes(self) -> RoutingConfig:
        from engine.routing import parse_routes

        try:
            parse_routes(self.routes)
        except ValueError as exc:
            raise ValueError(f"routing.routes: {exc}") from None
        return self


class ProviderCredentials(_Section):
    credentials: dict[str, Any] = Field(default_factory=dict)
    # The provider's API base URL for every caller (a regional endpoint, a corporate proxy), in
    # place of its YAML's default; a base URL the caller gives as a credential still wins.
    base_url: str = ""

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_base_url(value.strip()) if value.strip() else ""


class PluginsConfig(_Section):
    # Any problem loading provider_dirs (a bad file, a missing folder, a skipped provider)
    # stops the server at start-up instead of being reported and skipped.
    strict: bool = False
    # provider name -> runtime options laid over its YAML's `runtime:` block (protocol,
    # base_url, option flags), checked against the protocol's typed options at start-up.
    overlays: dict[str, dict[str, Any]] = Field(default_factory=dict)


class Config(_Section):
    grpc: GrpcConfig = Field(default_factory=GrpcConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    egress: EgressConfig = Field(default_factory=EgressConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    observability: ObservabilityConfig = Field(default_factory=ObservabilityConfig)
    # Extra provider folders loaded after the built-in ones: Dify's in-tree layout, a Dify plugin
    # folder, a .difypkg package, or a folder of any of these.
    auth: AuthConfig = Field(default_factory=AuthConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    tls: TlsConfig = Field(default_factory=TlsConfig)
    # Extra provider folders (Dify layout) loaded after the built-in ones.
    provider_dirs: list[str] = Field(default_factory=list)
    plugins: PluginsConfig = Field(default_factory=PluginsConfig)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    # Server-side credentials, used by the OpenAI-compatible HTTP endpoint.
    providers: dict[str, ProviderCredentials] = Field(default_factory=dict)
    log_level: str = "INFO"

    _dirs_empty: bool = PrivateAttr(default=False)

    @model_validator(mode="after")
    def _base_urls_allowed(self) -> Config:
        # An address literal is judged here; a host name is judged after DNS at every connect.
        policy = EgressPolicy.from_config(self.egress.allow_private_networks, self.egress.allowed_cidrs)
        for name, entry in self.providers.items():
            address = ip_literal(urlsplit(entry.base_url).hostname or "") if entry.base_url else None
            if address is not None and not policy.allows(address):
                raise ValueError(f"providers.{name}.base_url: {address} is an address the egress policy refuses "
                                 "(allow it with egress.allowed_cidrs or egress.allow_private_networks)")
        return self

    @model_validator(mode="wrap")
    @classmethod
    def _empty_dirs(cls, data: Any, handler: Any) -> Any:
        # An empty `provider_dirs:` key is YAML null: read as no folders, and said so in the report.
        empty = isinstance(data, dict) and "provider_dirs" in data and data["provider_dirs"] is None
        config = handler({**data, "provider_dirs": []} if empty else data)
        config._dirs_empty = empty
        return config

    def load_options(self) -> LoadOptions:
        """What the registry needs from the config to load ``provider_dirs``."""
        notes = ["'provider_dirs' is empty in the config: no extra provider folders loaded"] if self._dirs_empty else []
        return LoadOptions(strict=self.plugins.strict, overlays=dict(self.plugins.overlays), notes=notes)


def _expand(value: Any) -> Any:
    if isinstance(value, str):
        return _ENV_REF.sub(lambda m: os.environ.get(m.group(1), ""), value)
    if isinstance(value, dict):
        return {k: _expand(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v) for v in value]
    return value


def _unknown(path: list[str], bad: int, model: type[BaseModel], spell, source: str) -> ConfigError:
    """The error for ``path`` whose part ``bad`` ``model`` lacks; ``spell`` writes a path as the
    operator wrote it (``a.b`` in the file, ``MODEL_RUNTIME_A__B`` in the environment)."""
    valid = list(model.model_fields)
    near = difflib.get_close_matches(path[bad], valid, n=1, cutoff=0.5)
    hint = (f"did you mean {spell([*path[:bad], near[0], *path[bad + 1:]])}?" if near
            else f"valid here: {', '.join(valid)}")
    return ConfigError(f"unknown config key {spell(path)} in {source} ({hint})")


def _file_key(path: list[str]) -> str:
    return "'" + ".".join(path) + "'"


def _env_key(path: list[str]) -> str:
    return ENV_PREFIX + "__".join(path).upper()


def _section_model(model: type[BaseModel], key: str) -> type[BaseModel] | None:
    """The model of a nested section, ``ProviderCredentials`` for ``providers.<name>``."""
    annotation = model.model_fields[key].annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def check_keys(data: Any, source: str, model: type[BaseModel] = Config, path: tuple[str, ...] = ()) -> None:
    """Raise :class:`ConfigError` for the first file key no model field accepts."""
    if not isinstance(data, dict):
        return
    for key, value in data.items():
        here = [*path, str(key)]
        if key not in model.model_fields:
            raise _unknown(here, len(path), model, _file_key, source)
        nested = _section_model(model, key)
        if nested is not None:
            check_keys(value, source, nested, tuple(here))
        elif model is Config and key == "providers" and isinstance(value, dict):
            for provider, entry in value.items():
                check_keys(entry, source, ProviderCredentials, ("providers", str(provider)))


def _apply_env(data: dict[str, Any]) -> None:
    for key, value in sorted(os.environ.items()):
        if not key.startswith(ENV_PREFIX) or key in NOT_OVERRIDES:
            continue
        path = key[len(ENV_PREFIX):].lower().split("__")
        model: type[BaseModel] | None = Config
        for i, part in enumerate(path):  # check the path against the models before touching data
            if model is None:
                break
            if part not in model.model_fields:
                raise _unknown(path, i, model, _env_key, "the environment")
            model = _section_model(model, part) if i < len(path) - 1 else None
        node = data
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = yaml.safe_load(value) if value else value


def _problem(error: Any) -> str:
    where = ".".join(map(str, error["loc"]))
    text = str(error["msg"]).removeprefix("Value error, ")
    return f"{where}: {text}" if where else text


def load_config(path: str | Path | None = None) -> Config:
    data: dict[str, Any] = {}
    if path:
        try:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the config must be a mapping")
        data = loaded
        check_keys(data, str(path))
    data = _expand(data)
    _apply_env(data)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(_problem(e) for e in exc.errors())
        raise ConfigError(f"invalid config: {problems}") from None


def empty_credentials(config: Config) -> list[tuple[str, str]]:
    """(provider, field) of server-side credentials that resolved to nothing (an unset ``${VAR}``)."""
    return [(name, field) for name, entry in config.providers.items()
            for field, value in entry.credentials.items() if value is None or value == ""]
