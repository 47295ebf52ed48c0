"""Reaching Bedrock: endpoints, authentication (SigV4 or a Bedrock API key) and AWS's error shape.

Endpoints (the provider YAML's ``runtime:`` block names the credentials; all optional):

    base_url                    default ``https://bedrock-runtime.{region}.{domain}``
    base_url_credential         credential overriding it (Dify: bedrock_endpoint_url)
    agent_base_url              default ``https://bedrock-agent-runtime.{region}.{domain}`` (rerank)
    agent_base_url_credential   credential overriding that (bedrock_agent_endpoint_url); without
                                it rerank goes to AWS even when the runtime endpoint is overridden
    signing_service             SigV4 service name, ``bedrock`` for both endpoints
    validate_model              the model a provider-credential check pings

``{domain}`` is ``amazonaws.com`` (``amazonaws.com.cn`` for ``cn-*`` regions).

Authentication: a ``bedrock_api_key`` credential (a Bedrock API key, what boto3 reads from
``AWS_BEARER_TOKEN_BEDROCK``) is sent as ``Authorization: Bearer``; otherwise the request is
signed with SigV4 from ``aws_access_key_id`` / ``aws_secret_access_key`` (+ ``aws_session_token``
for temporary credentials). Credentials of the server's own environment (instance roles, the
``AWS_*`` variables) are never used: a multi-tenant runtime must not lend its identity to callers.

Errors: the type comes from the ``x-amzn-ErrorType`` header (``ThrottlingException:http://…``),
else ``__type`` or ``code`` in the body; the message from ``message``/``Message``. The type
decides the class, the status code is the fallback (see :func:`error_from`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import orjson

from engine._http.status import error_for_status, retry_after_seconds
from engine.adapter import CallContext
from engine.errors import (
    FieldViolation,
    InvokeAuthorizationError,
    InvokeBadRequestError,
    InvokeError,
    InvokeRateLimitError,
    InvokeServerUnavailableError,
    NotFoundError,
    RuntimeFault,
)

from .sigv4 import AwsCredentials, sign_request

RUNTIME_URL = "https://bedrock-runtime.{region}.{domain}"
AGENT_RUNTIME_URL = "https://bedrock-agent-runtime.{region}.{domain}"
SIGNING_SERVICE = "bedrock"
_MAX_MESSAGE = 500

_AUTH_ERRORS = {
    "AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException",
    "IncompleteSignatureException", "MissingAuthenticationTokenException", "ExpiredTokenException",
    "InvalidClientTokenId", "UnauthorizedException", "SignatureDoesNotMatch",
}
_RATE_ERRORS = {"ThrottlingException", "ServiceQuotaExceededException", "TooManyRequestsException"}
_UNAVAILABLE_ERRORS = {
    "InternalServerException", "ServiceUnavailableException", "ModelNotReadyException",
    "ModelTimeoutException", "InternalFailure", "ServiceUnavailable",
}
_BAD_REQUEST_ERRORS = {"ValidationException", "ConflictException", "BadRequestException",
                       "SerializationException"}


# ---- credentials and endpoints ----------------------------------------------------------------


def _credential(ctx: CallContext, name: str) -> str:
    value = ctx.credentials.get(name)
    return str(value).strip() if value else ""


def region(ctx: CallContext) -> str:
    value = _credential(ctx, "aws_region")
    if not value:
        raise InvokeBadRequestError(
            "aws_region is required",
            field_violations=(FieldViolation("credentials.aws_region", "required"),),
        )
    return value


def partition(region_name: str) -> str:
    if region_name.startswith("cn-"):
        return "aws-cn"
    if region_name.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def _domain(region_name: str) -> str:
    return "amazonaws.com.cn" if region_name.startswith("cn-") else "amazonaws.com"


def _endpoint(ctx: CallContext, option: str, default_credential: str, template_option: str, template: str) -> str:
    name = str(ctx.options.get(option) or default_credential)
    custom = _credential(ctx, name)
    if custom:
        if not custom.startswith(("http://", "https://")):
            raise InvokeBadRequestError(
                "endpoint URL must start with http:// or https://",
                field_violations=(FieldViolation(f"credentials.{name}", "must be an http(s) URL"),),
            )
        return custom.rstrip("/")
    name_of_region = region(ctx)
    return str(ctx.options.get(template_option) or template).format(
        region=name_of_region, domain=_domain(name_of_region)).rstrip("/")


def runtime_base(ctx: CallContext) -> str:
    return _endpoint(ctx, "base_url_credential", "bedrock_endpoint_url", "base_url", RUNTIME_URL)


def agent_runtime_base(ctx: CallContext) -> str:
    return _endpoint(ctx, "agent_base_url_credential", "bedrock_agent_endpoint_url", "agent_base_url",
                     AGENT_RUNTIME_URL)


def encode_model_id(model: str) -> str:
    """A model id as one path segment: an ARN's ``/`` becomes ``%2F``; ``:`` stays as it is.

    botocore sends ``:`` as ``%3A``; both forms reach the same model, since AWS canonicalises
    the path exactly as received (encoding it once more). The raw ``:`` is chosen because it is
    the only form every transport sends unchanged: aiohttp (yarl) rewrites ``%3A`` to ``:``
    before sending, httpx does not, and the signature must cover the bytes on the wire.
    """
    return quote(model, safe="-_.~:")


def model_url(ctx: CallContext, model: str, operation: str) -> str:
    """``{runtime}/model/{modelId}/{operation}`` (converse, converse-stream, invoke)."""
    return f"{runtime_base(ctx)}/model/{encode_model_id(model)}/{operation}"


def foundation_model_arn(ctx: CallContext, model: str) -> str:
    if model.startswith("arn:"):
        return model
    name_of_region = region(ctx)
    return f"arn:{partition(name_of_region)}:bedrock:{name_of_region}::foundation-model/{model}"


def auth_headers(ctx: CallContext, method: str, url: str, headers: dict[str, str], body: bytes) -> dict[str, str]:
    """``headers`` plus authentication: Bearer for a Bedrock API key, else a SigV4 signature."""
    api_key = _credential(ctx, "bedrock_api_key")
    if api_key:
        return {**headers, "authorization": f"Bearer {api_key}"}
    key_id = _credential(ctx, "aws_access_key_id")
    secret = _credential(ctx, "aws_secret_access_key")
    if not key_id or not secret:
        missing = [n for n, v in (("aws_access_key_id", key_id), ("aws_secret_access_key", secret)) if not v]
        raise InvokeAuthorizationError(
            "AWS credentials are missing: give an access key pair or a Bedrock API key",
            field_violations=tuple(FieldViolation(f"credentials.{n}", "required unless bedrock_api_key is given")
                                   for n in missing),
        )
    credentials = AwsCredentials(key_id, secret, _credential(ctx, "aws_session_token"))
    service = str(ctx.options.get("signing_service") or SIGNING_SERVICE)
    return sign_request(method, url, headers, body, credentials, region(ctx), service)


def json_headers(accept: str = "application/json") -> dict[str, str]:
    return {"content-type": "application/json", "accept": accept}


async def post(ctx: CallContext, url: str, body: Any, accept: str = "application/json") -> httpx.Response:
    """POST a JSON body, authenticated; returns the response with its body read, or raises."""
    content = orjson.dumps(body)
    headers = auth_headers(ctx, "POST", url, json_headers(accept), content)
    response = await ctx.http.request("POST", url, headers=headers, content=content, deadline=ctx.deadline)
    await raise_for_status(response)
    return response


def read_json(response: httpx.Response) -> Any:
    try:
        return orjson.loads(response.content or b"null")
    except orjson.JSONDecodeError:
        raise InvokeError("The provider returned a response that is not JSON") from None


# ---- errors -------------------------------------------------------------------------------------


def error_type(value: str) -> str:
    """``ValidationException:http://internal.amazon.com/…`` or ``aws.protocoltests#Foo`` → the bare name."""
    name = value.split(":", 1)[0].strip()
    return name.rsplit("#", 1)[-1]


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def error_from(
    kind: str, message: str, status: int | None, body: dict[str, Any] | None = None,
    headers: httpx.Headers | None = None,
) -> RuntimeFault:
    """Map an AWS error (its type, message, HTTP status and body) to the runtime's tree."""
    kind = error_type(kind)
    name = kind[:1].upper() + kind[1:]  # stream exceptions use camelCase: throttlingException
    message = (message or "").strip()[:_MAX_MESSAGE]
    text = f"{name}: {message}" if name and message else message or name or f"HTTP {status}"
    body = body or {}
    if name in _AUTH_ERRORS or (status in (401, 403) and not name):
        # The vendor text is dropped, as elsewhere; only the AWS error type is kept (it never
        # carries key material) so a wrong secret and a model without access can be told apart.
        detail = f" ({name})" if name else ""
        return InvokeAuthorizationError(InvokeAuthorizationError.default_description + detail,
                                        upstream_status=status)
    if name in _RATE_ERRORS:
        retry = retry_after_seconds(headers) if headers is not None and name == "ThrottlingException" else None
        return InvokeRateLimitError(text, retry_after=retry, upstream_status=status)
    if name in ("ModelErrorException", "ModelStreamErrorException"):
        original = _int(body.get("originalStatusCode"))
        extra = body.get("originalMessage")
        if original is not None:
            text += f" (model returned HTTP {original}{': ' + str(extra)[:200] if extra else ''})"
        if original == 429:
            return InvokeRateLimitError(text, upstream_status=status)
        if original is not None and 400 <= original < 500:
            return InvokeBadRequestError(text, upstream_status=status)
        return InvokeServerUnavailableError(text, upstream_status=status)
    if name in _UNAVAILABLE_ERRORS:
        retry = retry_after_seconds(headers) if headers is not None else None
        return InvokeServerUnavailableError(text, upstream_status=status, retry_after=retry)
    if name == "ResourceNotFoundException":
        return NotFoundError(text, upstream_status=status)
    if name in _BAD_REQUEST_ERRORS:
        return InvokeBadRequestError(text, upstream_status=status)
    if status is None:  # an unknown exception inside a 200 stream
        return InvokeServerUnavailableError(text)
    return error_for_status(status, text, headers)


async def raise_for_status(response: httpx.Response) -> None:
    """Raise the mapped error when the response is not 2xx (reads the error body)."""
    if response.status_code < 400:
        return
    await response.aread()
    try:
        body = orjson.loads(response.content) if response.content else None
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        body = {}
    kind = response.headers.get("x-amzn-errortype") or str(body.get("__type") or body.get("code") or "")
    message = str(body.get("message") or body.get("Message") or "")
    if not message and not body:
        ctype = response.headers.get("content-type", "")
        message = response.text[:200] if "text/plain" in ctype else ""
    raise error_from(kind, message, response.status_code, body, response.headers)
