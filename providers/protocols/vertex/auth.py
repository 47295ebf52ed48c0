"""Vertex AI auth: a service-account key exchanged for an OAuth access token, and a token cache.

The exchange is Google's JWT-bearer grant (RFC 7523), as google-auth does it for a service
account:

1. the key JSON (``vertex_service_account_key``: raw JSON, or base64 of it as Dify accepts)
   gives ``client_email``, ``private_key_id``, ``private_key`` (PEM RSA) and ``token_uri``;
2. a JWT with header ``{"alg": "RS256", "typ": "JWT", "kid": private_key_id}`` and claims
   ``iss`` = client_email, ``scope`` = cloud-platform, ``aud`` = the token endpoint, ``iat``,
   ``exp`` = iat + 3600, signed RSASSA-PKCS1-v1_5 with SHA-256;
3. ``POST`` to the token endpoint, form ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer``
   and ``assertion=<jwt>`` → ``{"access_token", "expires_in", "token_type": "Bearer"}``.

The token endpoint is ``vertex_token_uri`` when set (tests, private Google access), else the
key's ``token_uri``, else https://oauth2.googleapis.com/token; it goes through the egress
guard like every other request.

Cache (:class:`TokenCache`): one token per service account, kept until 60 s before it
expires. The key is the account (client_email + private_key_id) plus a digest of the private
key and the token endpoint, so a forged key JSON that copies an account's public fields never
receives that account's cached token. At most one exchange per account runs at a time (an
``asyncio.Lock`` each; waiters take the fresh token). :meth:`TokenCache.invalidate` drops a
token Vertex refused (401) so the next call exchanges again.

Secrets: the private key and the assertion appear in no message, log or exception; errors
say what was wrong with the key (not JSON, no private_key, not an RSA PEM, ...) and never
quote it. Parsed keys are cached by a digest of the credential, not by the credential.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import orjson

from engine._http.status import error_for_status
from engine.adapter import CallContext
from engine.errors import (
    FieldViolation,
    InvokeAuthorizationError,
    InvokeBadRequestError,
    InvokeError,
    RuntimeFault,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import rsa

KEY_CREDENTIAL = "vertex_service_account_key"
TOKEN_URI_CREDENTIAL = "vertex_token_uri"
DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_LIFETIME = 3600  # seconds; Google accepts at most one hour
REFRESH_MARGIN = 60.0  # a cached token is replaced this long before it expires
DEFAULT_EXPIRES_IN = 3600.0
_KEY_FIELD = f"credentials.{KEY_CREDENTIAL}"
_MAX_DESCRIPTION = 200


class TokenExchangeError(InvokeAuthorizationError):
    """The token endpoint refused the service account (bad key, unknown or disabled account).

    Still an InvokeAuthorizationError for callers; its own class tells the 401 retry that a
    new token would not help.
    """


def _bad_key(description: str) -> InvokeAuthorizationError:
    return TokenExchangeError(
        f"The service account key is not usable: {description}",
        field_violations=(FieldViolation(_KEY_FIELD, description),),
    )


# ---- the service account -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    client_email: str
    private_key_id: str
    token_uri: str
    key_digest: str  # sha256 of the PEM: part of the cache key, never the key itself
    signer: rsa.RSAPrivateKey = field(repr=False)

    def sign(self, message: bytes) -> bytes:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        return self.signer.sign(message, padding.PKCS1v15(), hashes.SHA256())


def _decode_json(raw: str) -> Any:
    """The key as raw JSON, or base64 (standard or URL-safe, padding optional) of it."""
    text = raw.strip().lstrip("\ufeff").lstrip()
    if not text.startswith("{"):
        compact = "".join(text.split())
        padded = compact + "=" * (-len(compact) % 4)
        try:
            decoded = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
            text = decoded.decode("utf-8").strip()
        except (binascii.Error, ValueError):
            raise _bad_key("it is neither JSON nor base64-encoded JSON") from None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        raise _bad_key("it is not valid JSON") from None


def parse_service_account(raw: str) -> ServiceAccount:
    data = _decode_json(raw)
    if not isinstance(data, dict):
        raise _bad_key("it is not a JSON object")
    if data.get("type") not in (None, "service_account"):
        raise _bad_key("its type is not service_account (user or external-account credentials are not supported)")
    email, pem = data.get("client_email"), data.get("private_key")
    if not isinstance(email, str) or not email:
        raise _bad_key("it has no client_email")
    if not isinstance(pem, str) or not pem:
        raise _bad_key("it has no private_key")
    # Imported here: cryptography adds ~9 MB to every server, and only Vertex keys need it.
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    try:
        signer = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):  # the messages of these may describe the key: not forwarded
        raise _bad_key("its private_key is not a PEM private key") from None
    except Exception:  # noqa: BLE001 - any other parse failure of the key: same answer
        raise _bad_key("its private_key could not be read") from None
    if not isinstance(signer, rsa.RSAPrivateKey):
        raise _bad_key("its private_key is not an RSA key")
    token_uri = data.get("token_uri")
    return ServiceAccount(
        client_email=email, private_key_id=str(data.get("private_key_id") or ""),
        token_uri=token_uri if isinstance(token_uri, str) and token_uri else DEFAULT_TOKEN_URI,
        key_digest=hashlib.sha256(pem.encode()).hexdigest(), signer=signer,
    )


def _b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def make_assertion(account: ServiceAccount, audience: str, now: float | None = None) -> str:
    """The signed JWT (compact form) that the token endpoint exchanges for an access token."""
    issued = int(time.time() if now is None else now)
    header = {"alg": "RS256", "typ": "JWT"}
    if account.private_key_id:
        header["kid"] = account.private_key_id
    claims = {"iss": account.client_email, "scope": SCOPE, "aud": audience,
              "iat": issued, "exp": issued + ASSERTION_LIFETIME}
    signing_input = _b64url(orjson.dumps(header)) + b"." + _b64url(orjson.dumps(claims))
    return (signing_input + b"." + _b64url(account.sign(signing_input))).decode("ascii")


# ---- the exchange -------------------------------------------------------------------------------


def _loads(content: bytes) -> Any:
    try:
        return orjson.loads(content) if content else None
    except orjson.JSONDecodeError:
        return None


def _exchange_error(status: int, body: Any, response_headers: Any) -> RuntimeFault:
    """The token endpoint's ``{"error", "error_description"}`` as a runtime error."""
    code = description = ""
    if isinstance(body, dict):
        code = str(body.get("error") or "")[:_MAX_DESCRIPTION]
        description = str(body.get("error_description") or "")[:_MAX_DESCRIPTION]
        if "-----" in description:  # never forward anything that looks like key material
            description = ""
    text = f"{code}: {description}" if code and description else code or description
    if status in (400, 401, 403):  # invalid_grant, invalid_client, unauthorized_client, ...
        reason = f" ({text})" if text else ""
        return TokenExchangeError(
            f"The token endpoint rejected the service account{reason}", upstream_status=status,
            field_violations=(FieldViolation(_KEY_FIELD, text or "rejected by the token endpoint"),),
        )
    error = error_for_status(status, f"token endpoint: {text}" if text else "token endpoint error", response_headers)
    if isinstance(error, InvokeAuthorizationError):  # e.g. 407 or another 4xx: still the key's side
        return TokenExchangeError(error.description, upstream_status=status)
    return error


def token_endpoint(ctx: CallContext, account: ServiceAccount) -> str:
    custom = ctx.credentials.get(TOKEN_URI_CREDENTIAL)
    uri = str(custom).strip() if custom else account.token_uri
    if not uri.startswith(("http://", "https://")):
        field_name = f"credentials.{TOKEN_URI_CREDENTIAL}" if custom else _KEY_FIELD
        raise InvokeBadRequestError("the token endpoint must be an http(s) URL",
                                    field_violations=(FieldViolation(field_name, "must be an http(s) URL"),))
    return uri


async def exchange(ctx: CallContext, account: ServiceAccount, uri: str) -> tuple[str, float]:
    """(access token, seconds it is valid for) from one JWT-bearer exchange."""
    form = urlencode({"grant_type": GRANT_TYPE, "assertion": make_assertion(account, uri)}).encode()
    response = await ctx.http.request(
        "POST", uri, content=form, deadline=ctx.deadline,
        headers={"content-type": "application/x-www-form-urlencoded", "accept": "application/json"},
    )
    body = _loads(response.content)
    if response.status_code >= 300:
        raise _exchange_error(response.status_code, body, response.headers)
    token = body.get("access_token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise InvokeError("The token endpoint answered without an access_token")
    try:
        expires_in = float(body.get("expires_in") or DEFAULT_EXPIRES_IN)
    except (TypeError, ValueError):
        expires_in = DEFAULT_EXPIRES_IN
    return token, expires_in


# ---- the cache ----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Token:
    value: str
    expires_at: float  # event-loop (monotonic) time


class TokenCache:
    """Access tokens per service account; see the module docstring."""

    def __init__(self, max_accounts: int = 1024, refresh_margin: float = REFRESH_MARGIN) -> None:
        self.refresh_margin = refresh_margin
        self.max_accounts = max_accounts
        self.exchanges = 0  # how many token exchanges ran (observability and tests)
        self._tokens: OrderedDict[tuple[str, ...], _Token] = OrderedDict()
        self._locks: weakref.WeakValueDictionary[tuple[str, ...], asyncio.Lock] = weakref.WeakValueDictionary()
        self._accounts: OrderedDict[str, ServiceAccount] = OrderedDict()

    def account(self, ctx: CallContext) -> ServiceAccount:
        raw = ctx.credentials.get(KEY_CREDENTIAL)
        if not isinstance(raw, str) or not raw.strip():
            raise TokenExchangeError("A service account key is required",
                                     field_violations=(FieldViolation(_KEY_FIELD, "required"),))
        digest = hashlib.sha256(raw.encode()).hexdigest()
        account = self._accounts.get(digest)
        if account is None:
            account = parse_service_account(raw)
            self._accounts[digest] = account
            if len(self._accounts) > self.max_accounts:
                self._accounts.popitem(last=False)
        else:
            self._accounts.move_to_end(digest)
        return account

    def _key(self, ctx: CallContext) -> tuple[tuple[str, ...], ServiceAccount, str]:
        account = self.account(ctx)
        uri = token_endpoint(ctx, account)
        return (account.client_email, account.private_key_id, account.key_digest, uri), account, uri

    def _fresh(self, key: tuple[str, ...], now: float) -> _Token | None:
        token = self._tokens.get(key)
        if token is not None and now < token.expires_at - self.refresh_margin:
            self._tokens.move_to_end(key)
            return token
        return None

    async def token(self, ctx: CallContext) -> str:
        """A valid access token for the call's service account (cached, or exchanged now)."""
        key, account, uri = self._key(ctx)
        loop = asyncio.get_running_loop()
        cached = self._fresh(key, loop.time())
        if cached is not None:
            return cached.value
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        async with lock:  # one exchange per account at a time; the others wait and reuse it
            cached = self._fresh(key, loop.time())
            if cached is not None:
                return cached.value
            started = loop.time()
            self.exchanges += 1
            value, expires_in = await exchange(ctx, account, uri)
            # A token that lives less than the margin is used for this call only: _fresh
            # never hands it out again.
            self._tokens[key] = _Token(value, started + expires_in)
            self._tokens.move_to_end(key)
            if len(self._tokens) > self.max_accounts:
                self._tokens.popitem(last=False)
            return value

    def invalidate(self, ctx: CallContext, value: str | None = None) -> None:
        """Forget the account's token (only if it is still ``value``, when given: a token that
        another call already replaced stays)."""
        try:
            key, _, _ = self._key(ctx)
        except RuntimeFault:
            return
        token = self._tokens.get(key)
        if token is not None and (value is None or token.value == value):
            del self._tokens[key]
