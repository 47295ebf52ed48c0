"""Who to call and how to authenticate, for every provider that speaks OpenAI's HTTP API.

Everything that varies between OpenAI-compatible providers is data in the provider YAML's
``runtime:`` block (read once per provider). Reaching the provider:

    base_url               default base URL (already including /v1 or the provider's prefix)
    base_url_credential    credential variable that overrides the base URL
    base_url_append        appended to a caller-given base URL (OpenAI's own form omits /v1)
    base_url_by_credential {credential, values: {value: url}}: a credential (e.g. a region or
                           "international endpoint" choice) picks the default base URL
    base_url_path          path inserted between the base URL and the endpoint; ``{model}`` is
                           the wire model id (Azure: /openai/deployments/{model})
    model_credential       credential holding the wire model id (Xinference model UID,
                           Volcengine endpoint id); default: the model name itself
    query                  static query parameters
    query_credentials      {param: credential}: query parameters taken from credentials
                           (Azure: api-version)
    headers                static extra headers (OpenRouter HTTP-Referer / X-Title)

Authentication:

    api_key_credential     credential variable holding the key
    auth_header            "bearer" (default) | "api-key" (Azure) | "none"
    auth_header_credential credential choosing the auth style, mapped by auth_header_values
                           ({choice: bearer|api-key}; Azure: API key or Entra ID token)
    api_key_format         "plain" (default) | "zhipu_jwt": an ``id.secret`` key is sent as a
                           short-lived HS256 JWT (see :mod:`.auth`)
    organization_credential  credential sent as OpenAI-Organization

Request and response shapes (applied by :mod:`.chat_transform` and the capability modules):

    chat_path              chat endpoint under the base URL (default chat/completions; MiniMax:
                           text/chatcompletion_v2)
    status_envelope        errors reported inside a 200 body: {code: dotted path, message:
                           dotted path, ok: [codes], statuses: {code: HTTP status}} (Spark
                           HTTP ``code``, MiniMax ``base_resp.status_code``); the retrieval
                           family's embeddings and rerank honour it too
    stream_usage           send stream_options.include_usage (default true)
    drop_fields            body fields never sent (Mistral rejects ``user``)
    tool_choice_values     {mode: wire value}: Mistral wants "any" where OpenAI says "required"
    switch_parameters      boolean parameters sent as {"type": "enabled"|"disabled"}
                           (DeepSeek V4, Kimi, GLM ``thinking``)
    parameter_paths        {parameter: "a.b"}: move a flat parameter into a nested object
                           (OpenRouter reasoning_effort → reasoning.effort)
    extra_body             static body fields added when absent (OpenRouter provider policy)
    user_max_length        cut the ``user`` field to this many characters (Moonshot: 32)
    embedding_encoding     "base64" (compact, fast to decode) or "float"; "" sends none
    embedding_input_type_field/values  asymmetric embeddings (NVIDIA input_type query|passage)
    rerank_style           "jina" (default: documents/top_n → results) | "nvidia"
                           (query.text/passages → rankings[{index, logit}], sigmoid score)
    rerank_url             absolute rerank URL when it lives elsewhere (NVIDIA retrieval host)

Model types the OpenAI-compatible API lacks (see :mod:`.provider`):

    capabilities           {model type: "module:Class"}: the capability comes from another wire
                           package instead of this family (Tongyi: rerank and tts from
                           providers.wire.dashscope; MiniMax: text-embedding from
                           providers.wire.retrieval.embeddings:RetrievalEmbeddings, shaped by
                           the ``embedding:`` dialect block). Built with
                           ``Class.from_runtime(options, provider)`` if defined, else ``Class()``
    capability_options     runtime options laid over this block for those capabilities only
                           (DashScope's native base_url/base_url_by_credential; MiniMax's
                           GroupId as query_credentials), so chat never sees them

Catalog and credential checks (see :mod:`.provider`):

    validate_with          "chat" (default: a 5-token completion of validate_model) | "models"
                           (GET /models) | "model_info" (GET /models/{id}, Xinference: reads
                           model_ability into the returned credentials)
    validate_model         the model the provider check pings
    validate_model_credential  credential that may name another model to ping (Zhipu's form)
    customizable           "openai_compatible" (schema from the model credential form) |
                           "base_model" (schema of a base model named by base_model_credential,
                           from the predefined models of provider base_models_from; Azure
                           deployments take their OpenAI base model's schema)
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import orjson

from engine.adapter import CallContext
from engine.errors import FieldViolation, InvokeBadRequestError


def _credential(ctx: CallContext, option: str) -> str:
    name = ctx.options.get(option)
    if not name:
        return ""
    value = ctx.credentials.get(name)
    return str(value).strip() if value else ""


def model_id(ctx: CallContext) -> str:
    """The model id sent on the wire (a credential for UID/endpoint-addressed servers)."""
    return _credential(ctx, "model_credential") or ctx.model


def _default_base(ctx: CallContext) -> str:
    choice = ctx.options.get("base_url_by_credential")
    if isinstance(choice, dict):
        value = ctx.credentials.get(str(choice.get("credential", "")))
        if value is not None:
            url = (choice.get("values") or {}).get(str(value).lower())
            if url:
                return str(url)
    return str(ctx.options.get("base_url") or "")


def has_base_url_override(ctx: CallContext) -> bool:
    """True when the caller gave their own base URL (then absolute endpoint options yield)."""
    return bool(_credential(ctx, "base_url_credential"))


def base_url(ctx: CallContext) -> str:
    custom = _credential(ctx, "base_url_credential")
    if custom:
        if not custom.startswith(("http://", "https://")):
            field = ctx.options.get("base_url_credential")
            raise InvokeBadRequestError(
                "base URL must start with http:// or https://",
                field_violations=(FieldViolation(f"credentials.{field}", "must be an http(s) URL"),),
            )
        custom = custom.rstrip("/")
        append = ctx.options.get("base_url_append", "")
        if append and not custom.endswith(append):
            custom += append
        return custom
    default = _default_base(ctx)
    if not default:
        field = ctx.options.get("base_url_credential", "base_url")
        raise InvokeBadRequestError(
            "this provider needs a base URL",
            field_violations=(FieldViolation(f"credentials.{field}", "required"),),
        )
    return default.rstrip("/")


def api_key(ctx: CallContext) -> str:
    key = _credential(ctx, "api_key_credential")
    if key and ctx.options.get("api_key_format") == "zhipu_jwt":
        from .auth import zhipu_token

        key = zhipu_token(key)
    return key


def _auth_style(ctx: CallContext) -> str:
    choice = _credential(ctx, "auth_header_credential")
    if choice:
        mapped = (ctx.options.get("auth_header_values") or {}).get(choice)
        if mapped:
            return str(mapped)
    return str(ctx.options.get("auth_header", "bearer"))


def headers(ctx: CallContext, content_type: str | None = "application/json") -> dict[str, str]:
    out: dict[str, str] = {}
    if content_type:
        out["content-type"] = content_type
    key = api_key(ctx)
    style = _auth_style(ctx)
    if key:
        if style == "api-key":
            out["api-key"] = key
        elif style == "bearer":
            out["authorization"] = f"Bearer {key}"
    organization = _credential(ctx, "organization_credential")
    if organization:
        out["openai-organization"] = organization
    for name, value in (ctx.options.get("headers") or {}).items():
        out[str(name)] = str(value)
    return out


def url(ctx: CallContext, path: str) -> str:
    prefix = ctx.options.get("base_url_path") or ""
    if prefix:
        prefix = "/" + str(prefix).strip("/").replace("{model}", quote(model_id(ctx), safe=""))
    return f"{base_url(ctx)}{prefix}/{path.lstrip('/')}"


def query(ctx: CallContext) -> dict[str, str] | None:
    out = {str(k): str(v) for k, v in (ctx.options.get("query") or {}).items()}
    for param, credential in (ctx.options.get("query_credentials") or {}).items():
        value = ctx.credentials.get(credential)
        if value not in (None, ""):
            out[str(param)] = str(value).strip()
    return out or None


def dumps(body: Any) -> bytes:
    return orjson.dumps(body)


def error_message(response: httpx.Response) -> str:
    """OpenAI-style ``{"error": {"message"}}``, plus the variants compatible servers use:
    ``{"message"}`` (Mistral), ``{"detail"}`` (Xinference, NVIDIA), a bare string error."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return ""
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, str):
            return err
        if isinstance(err, dict):
            message = err.get("message") or err.get("msg") or err.get("detail") or ""
            if isinstance(message, str):
                return message
            return orjson.dumps(message).decode()[:300]
        detail = body.get("detail")
        if detail:
            return detail if isinstance(detail, str) else orjson.dumps(detail).decode()[:300]
    return ""
