"""Reaching Bedrock: endpoints, authentication (SigV4 or a Bedrock API key) and AWS's error shape.

Endpoints (:class:`~.options.BedrockOptions`, the provider YAML's ``runtime:`` block; every
key has AWS's default):

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

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from engine._http.response import UpstreamResponse
from engine._http.status import error_for_status, retry_after_seconds
from engine.adapter import CallContext
from engine.errors import (
    FieldViolation,
    InvokeAuthorizationError,
    InvokeBadRequestError,
    InvokeRateLimitError,
    InvokeServerUnavailableError,
    NotFoundError,
    RuntimeFault,
)
from providers.kit import http

from .options import BedrockOptions
from .sigv4 import AwsCredentials, sign_request

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


def options(ctx: CallContext) -> BedrockOptions:
    """The call's typed options (a plain mapping, as unit tests build contexts, is validated)."""
    given: Any = ctx.options
    if isinstance(given, BedrockOptions):
        return given
    raw = dict(given) if isinstance(given, dict) else {}
    return BedrockOptions.model_validate({**raw, "protocol": "bedrock"})


def region(ctx: CallContext) -> str:
    value = http.credential(ctx, "aws_region")
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


def _endpoint(ctx: CallContext, credential_name: str, template: str) -> str:
    custom = http.credential(ctx, credential_name)
    if custom:
        if not custom.startswith(("http://", "https://")):
            raise InvokeBadRequestError(
                "endpoint URL must start with http:// or https://",
                field_violations=(FieldViolation(f"credentials.{credential_name}", "must be an http(s) URL"),),
            )
        http.check_url(custom, credential_name)
        return custom.rstrip("/")
    name_of_region = region(ctx)
    return template.format(region=name_of_region, domain=_domain(name_of_region)).rstrip("/")


def runtime_base(ctx: CallContext) -> str:
    o = options(ctx)
    return _endpoint(ctx, o.base_url_credential, o.base_url)


def agent_runtime_base(ctx: CallContext) -> str:
    o = options(ctx)
    return _endpoint(ctx, o.agent_base_url_credential, o.agent_base_url)


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
    api_key = http.credential(ctx, "bedrock_api_key")
    if api_key:
        return {**headers, "authorization": f"Bearer {api_key}"}
    key_id = http.credential(ctx, "aws_access_key_id")
    secret = http.credential(ctx, "aws_secret_access_key")
    if not key_id or not secret:
        missing = [n for n, v in (("aws_access_key_id", key_id), ("aws_secret_access_key", secret)) if not v]
        raise InvokeAuthorizationError(
            "AWS credentials are missing: give an access key pair or a Bedrock API key",
            field_violations=tuple(FieldViolation(f"credentials.{n}", "required unless bedrock_api_key is given")
                                   for n in missing),
        )
    credentials = AwsCredentials(key_id, secret, http.credential(ctx, "aws_session_token"))
    return sign_request(method, url, headers, body, credentials, region(ctx), options(ctx).signing_service)


def json_headers(accept: str = "application/json") -> dict[str, str]:
    return {"content-type": "application/json", "accept": accept}


async def post(ctx: CallContext, url: str, body: Any, accept: str = "application/json") -> UpstreamResponse:
    """POST a JSON body, authenticated; returns the response with its body read, or raises."""
    content = http.dumps(body)
    headers = auth_headers(ctx, "POST", url, json_headers(accept), content)
    response = await ctx.http.request("POST", url, headers=headers, content=content, deadline=ctx.deadline)
    await raise_for_status(response)
    return response


def read_json(response: UpstreamResponse) -> Any:
    """A read 2xx body's JSON (None when empty). AWS reports errors by status, never in a 200."""
    return http.json_body(response.content)


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
    headers: Mapping[str, str] | None = None,
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


def _error_body(response: UpstreamResponse) -> dict[str, Any]:
    body = http.loads(response.content) if response.content else None
    return body if isinstance(body, dict) else {}


def error_message(response: UpstreamResponse) -> str:
    """The message of AWS's error body (``message`` or ``Message``)."""
    body = _error_body(response)
    return str(body.get("message") or body.get("Message") or "")


async def raise_for_status(response: UpstreamResponse) -> None:
    """Raise the mapped error when the response is not 2xx (reads the error body). AWS puts the
    error type in a header, which a message extractor cannot report: hence not :func:`http.check_status`."""
    if response.status_code < 400:
        return
    await response.aread()
    body = _error_body(response)
    kind = response.headers.get("x-amzn-errortype") or str(body.get("__type") or body.get("code") or "")
    message = error_message(response)
    if not message and not body:
        ctype = response.headers.get("content-type", "")
        message = response.text[:200] if "text/plain" in ctype else ""
    raise error_from(kind, message, response.status_code, body, response.headers)
