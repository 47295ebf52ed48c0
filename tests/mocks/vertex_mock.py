"""A mock of Vertex AI and of Google's OAuth token endpoint, on one raw HTTP/1.1 server.

    async with VertexMock(project="test-project") as mock:
        mock.add_account("sa@test-project.iam.gserviceaccount.com", "kid-1", private_key.public_key())
        creds = {"vertex_project_id": "test-project", "vertex_location": "us-central1",
                 "vertex_service_account_key": key_json, "vertex_endpoint_url": mock.url}
        # the key JSON's token_uri (or vertex_token_uri) is mock.token_url

Token endpoint (``POST /token``): a form with ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer``
and ``assertion=<JWT>``. The JWT must be RS256 with the ``kid`` of a registered account, signed by
that account's key (verified with its public key), ``iss`` = the account, ``aud`` = the token URL,
the cloud-platform ``scope``, and ``exp - iat`` at most 3600 s. Failures answer like Google: 400
``{"error": "invalid_grant", "error_description": ...}`` (bad signature, unknown account, bad
times), 400 ``unsupported_grant_type``. Success: ``{"access_token", "expires_in", "token_type"}``
with ``expires_in = token_lifetime``; tokens really stop working after ``server_lifetime``
(default: the same), or at once after :meth:`expire_all`.

Vertex (``/v1/projects/{p}/locations/{l}/publishers/{pub}/models/{m}:{method}``): every call needs
``Authorization: Bearer <token>``: none, an unknown token or an expired one is 401
``UNAUTHENTICATED`` (``ACCESS_TOKEN_EXPIRED`` in ErrorInfo when expired); another project is 403
``PERMISSION_DENIED``. Then:

- ``google`` ``generateContent`` / ``streamGenerateContent`` / ``countTokens``: the Gemini mock's
  logic (``mock.gemini``: its replies and scenarios), after checking that every ``contents[]`` has
  a role (Vertex requires it); Vertex's countTokens body (contents, systemInstruction, tools) is
  accepted as is;
- ``google`` ``predict``: text embeddings, ``instances[{content, task_type, title}]`` and
  ``parameters.outputDimensionality`` → ``predictions[].embeddings{values, statistics}``;
  gemini-embedding-001 takes one instance per request;
- ``anthropic`` ``rawPredict`` / ``streamRawPredict``: the Anthropic mock's logic (``mock.claude``)
  once the body proves Vertex's shape: ``anthropic_version: vertex-2023-10-16`` and no ``model``;
  ``count-tokens:rawPredict`` counts tokens (the model is then in the body).

``mock.fail_next(code, status, message)`` answers the next Vertex call (after auth) with a Google
error; ``mock.fail_next_token(code, body)`` does the same for the next token request.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any, Self
from urllib.parse import parse_qs

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .anthropic_mock import AnthropicMock
from .gemini_mock import GeminiMock
from .gemini_replies import TASK_TYPES, count_tokens, expected_embedding
from .httpserver import MockServer, Request, Response

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
VERTEX_VERSION = "vertex-2023-10-16"
EMBEDDING_MODELS = {"gemini-embedding-001": 3072, "text-embedding-005": 768, "text-multilingual-embedding-002": 768}
SINGLE_INSTANCE = {"gemini-embedding-001"}
_INVALID_CREDENTIALS = ("Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie "
                        "or other valid authentication credential. "
                        "See https://developers.google.com/identity/sign-in/web/devconsole-project.")


@dataclass
class Issued:
    token: str
    email: str
    expires_at: float  # time.monotonic() after which Vertex refuses it


class GoogleError(Exception):
    def __init__(self, code: int, status: str, message: str, details: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.code, self.status, self.message, self.details = code, status, message, details or []

    def body(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.message, "status": self.status}
        if self.details:
            err["details"] = self.details
        return {"error": err}


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


class VertexMock:
    def __init__(self, project: str = "test-project", token_lifetime: float = 3599,
                 server_lifetime: float | None = None) -> None:
        self.project = project
        self.token_lifetime = token_lifetime
        self.server_lifetime = server_lifetime
        self.accounts: dict[str, tuple[str, rsa.RSAPublicKey]] = {}  # email -> (kid, public key)
        self.issued: dict[str, Issued] = {}
        self.token_requests: list[Request] = []
        self.api_requests: list[Request] = []
        self.gemini = GeminiMock(api_keys=None)  # its logic only: it is never started
        self.claude = AnthropicMock(api_keys=None)
        self._vertex_failures: list[GoogleError] = []
        self._token_failures: list[tuple[int, dict[str, Any]]] = []
        self.server = MockServer(self._handle)

    async def __aenter__(self) -> Self:
        await self.server.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.server.stop()

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def token_url(self) -> str:
        return self.server.url + "/token"

    def add_account(self, email: str, key_id: str, public_key: rsa.RSAPublicKey) -> None:
        self.accounts[email] = (key_id, public_key)

    def expire_all(self) -> None:
        """Every token issued so far stops working (Vertex answers 401 ACCESS_TOKEN_EXPIRED)."""
        for issued in self.issued.values():
            issued.expires_at = 0.0

    def fail_next(self, code: int, status: str, message: str, details: list[dict[str, Any]] | None = None) -> None:
        self._vertex_failures.append(GoogleError(code, status, message, details))

    def fail_next_token(self, code: int, body: dict[str, Any]) -> None:
        self._token_failures.append((code, body))

    # ------------------------------------------------------------------ plumbing
    async def _json(self, resp: Response, body: Any, status: int = 200) -> None:
        await resp.send(status, {"content-type": "application/json; charset=UTF-8", "server": "ESF"},
                        json.dumps(body, indent=2))

    async def _handle(self, req: Request, resp: Response) -> None:
        if req.path == "/token":
            self.token_requests.append(req)
            await self._token(req, resp)
            return
        self.api_requests.append(req)
        try:
            await self._vertex(req, resp)
        except GoogleError as err:
            if not resp.started:
                await self._json(resp, err.body(), err.code)

    # ------------------------------------------------------------------ the token endpoint
    async def _token(self, req: Request, resp: Response) -> None:
        if self._token_failures:
            code, body = self._token_failures.pop(0)
            await self._json(resp, body, code)
            return
        form = {k: v[0] for k, v in parse_qs(req.body.decode("ascii", "replace")).items()}
        if req.method != "POST" or "x-www-form-urlencoded" not in (req.header("content-type") or ""):
            await self._json(resp, {"error": "invalid_request", "error_description": "Bad Request"}, 400)
            return
        if form.get("grant_type") != GRANT_TYPE:
            await self._json(resp, {"error": "unsupported_grant_type",
                                    "error_description": "Invalid grant_type: " + str(form.get("grant_type"))}, 400)
            return
        problem, email = self._check_assertion(form.get("assertion") or "")
        if problem:
            await self._json(resp, {"error": "invalid_grant", "error_description": problem}, 400)
            return
        token = "ya29.mock-" + uuid.uuid4().hex
        lifetime = self.server_lifetime if self.server_lifetime is not None else self.token_lifetime
        self.issued[token] = Issued(token, email, time.monotonic() + lifetime)
        await self._json(resp, {"access_token": token, "expires_in": self.token_lifetime, "token_type": "Bearer"})

    def _check_assertion(self, assertion: str) -> tuple[str, str]:
        """("", email) for a good assertion, else (Google's error_description, "")."""
        pieces = assertion.split(".")
        if len(pieces) != 3:
            return "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.", ""
        try:
            header = json.loads(_b64decode(pieces[0]))
            claims = json.loads(_b64decode(pieces[1]))
            signature = _b64decode(pieces[2])
        except ValueError:
            return "Invalid JWT: could not decode the token.", ""
        if header.get("alg") != "RS256" or header.get("typ") not in (None, "JWT"):
            return "Invalid JWT: unsupported algorithm.", ""
        account = self.accounts.get(str(claims.get("iss")))
        if account is None:
            return "Invalid grant: account not found", ""
        key_id, public_key = account
        if header.get("kid") not in (None, key_id):
            return "Invalid JWT Signature.", ""
        try:
            public_key.verify(signature, f"{pieces[0]}.{pieces[1]}".encode(), padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return "Invalid JWT Signature.", ""
        if claims.get("aud") != self.token_url:
            return "Invalid JWT: Failed audience check.", ""
        if SCOPE not in str(claims.get("scope") or "").split():
            return "Invalid OAuth scope or ID token audience provided.", ""
        now = time.time()
        iat, exp = claims.get("iat"), claims.get("exp")
        if not isinstance(iat, int) or not isinstance(exp, int) or exp - iat > 3600 or exp <= iat \
                or iat > now + 300 or exp < now - 300:
            return ("Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. "
                    "Check your iat and exp values in the JWT claim."), ""
        return "", str(claims["iss"])

    # ------------------------------------------------------------------ Vertex
    def _authorize(self, req: Request) -> None:
        auth = req.header("authorization") or ""
        if not auth.startswith("Bearer "):
            raise GoogleError(401, "UNAUTHENTICATED", "Request is missing required authentication credential. "
                              "Expected OAuth 2 access token, login cookie or other valid authentication credential.")
        issued = self.issued.get(auth[7:])
        if issued is None:
            raise GoogleError(401, "UNAUTHENTICATED", _INVALID_CREDENTIALS, [
                {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "CREDENTIALS_MISSING",
                 "domain": "googleapis.com", "metadata": {"service": "aiplatform.googleapis.com"}}])
        if time.monotonic() >= issued.expires_at:
            raise GoogleError(401, "UNAUTHENTICATED", _INVALID_CREDENTIALS, [
                {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "ACCESS_TOKEN_EXPIRED",
                 "domain": "googleapis.com", "metadata": {"service": "aiplatform.googleapis.com"}}])

    async def _vertex(self, req: Request, resp: Response) -> None:
        parts = req.path.split("/")
        # "", "v1", "projects", p, "locations", l, "publishers", pub, "models", "m:method"
        if len(parts) != 10 or parts[1] != "v1" or parts[2] != "projects" or parts[4] != "locations" \
                or parts[6] != "publishers" or parts[8] != "models" or ":" not in parts[9] or req.method != "POST":
            raise GoogleError(404, "NOT_FOUND", f"The requested URL {req.path} was not found on this server.")
        self._authorize(req)
        project, location, publisher = parts[3], parts[5], parts[7]
        model, _, method = parts[9].partition(":")
        if project != self.project:
            raise GoogleError(403, "PERMISSION_DENIED", f"Permission 'aiplatform.endpoints.predict' denied on resource "
                              f"'//aiplatform.googleapis.com/projects/{project}/locations/{location}/publishers/"
                              f"{publisher}/models/{model}' (or it may not exist).")
        if self._vertex_failures:
            raise self._vertex_failures.pop(0)
        if not isinstance(req.json, dict):
            raise GoogleError(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        if publisher == "google":
            await self._google(req, resp, model, method)
        elif publisher == "anthropic":
            await self._anthropic(req, resp, model, method)
        else:
            raise GoogleError(404, "NOT_FOUND", f"Publisher model `{publisher}/{model}` was not found.")

    async def _google(self, req: Request, resp: Response, model: str, method: str) -> None:
        body = req.json
        if method == "predict":
            await self._predict(resp, model, body)
            return
        if method not in ("generateContent", "streamGenerateContent", "countTokens"):
            raise GoogleError(400, "INVALID_ARGUMENT", f"Method {method} is not supported for {model}.")
        for i, content in enumerate(body.get("contents") or ()):
            if isinstance(content, dict) and not content.get("role"):
                raise GoogleError(400, "INVALID_ARGUMENT", f"Please use a valid role: user, model. (contents[{i}])")
        if method == "countTokens" and "generateContentRequest" not in body and set(body) - {"contents"}:
            body = {"generateContentRequest": {"model": f"models/{model}", **body}}
        inner = replace(req, path=f"/v1beta/models/{model}:{method}", json=body,
                        headers={**req.headers, "x-goog-api-key": "vertex"})
        await self.gemini._handle(inner, resp)

    async def _predict(self, resp: Response, model: str, body: dict[str, Any]) -> None:
        full = EMBEDDING_MODELS.get(model)
        if full is None:
            raise GoogleError(404, "NOT_FOUND", f"Publisher Model `publishers/google/models/{model}` was not found.")
        instances = body.get("instances")
        if not isinstance(instances, list) or not instances:
            raise GoogleError(400, "INVALID_ARGUMENT", "instances must not be empty.")
        if len(instances) > (1 if model in SINGLE_INSTANCE else 250):
            raise GoogleError(400, "INVALID_ARGUMENT", f"Too many instances for {model}: "
                              f"{'only 1 instance is' if model in SINGLE_INSTANCE else 'at most 250 are'} allowed.")
        dims = (body.get("parameters") or {}).get("outputDimensionality", full)
        if not isinstance(dims, int) or not 1 <= dims <= full:
            raise GoogleError(400, "INVALID_ARGUMENT", f"outputDimensionality must be between 1 and {full}.")
        predictions = []
        for i, instance in enumerate(instances):
            content = instance.get("content") if isinstance(instance, dict) else None
            task = instance.get("task_type", "RETRIEVAL_QUERY") if isinstance(instance, dict) else ""
            if not isinstance(content, str):
                raise GoogleError(400, "INVALID_ARGUMENT", f"instances[{i}].content must be a string.")
            if task not in TASK_TYPES:
                raise GoogleError(400, "INVALID_ARGUMENT", f"Invalid task_type {task!r} in instances[{i}].")
            predictions.append({"embeddings": {
                "values": expected_embedding(content, task, dims, full),
                "statistics": {"token_count": count_tokens(content), "truncated": False}}})
        await self._json(resp, {"predictions": predictions, "metadata": {"billableCharacterCount": sum(
            len(i["content"]) for i in instances)}})

    async def _anthropic(self, req: Request, resp: Response, model: str, method: str) -> None:
        body = dict(req.json)
        if method not in ("rawPredict", "streamRawPredict"):
            raise GoogleError(400, "INVALID_ARGUMENT", f"Method {method} is not supported for anthropic models.")
        if body.pop("anthropic_version", None) != VERTEX_VERSION:
            await self._json(resp, {"type": "error", "error": {"type": "invalid_request_error",
                                    "message": f"anthropic_version: must be {VERTEX_VERSION}"}}, 400)
            return
        if model == "count-tokens":
            path = "/v1/messages/count_tokens"
        else:
            if "model" in body:
                await self._json(resp, {"type": "error", "error": {"type": "invalid_request_error",
                                        "message": "model: Extra inputs are not permitted"}}, 400)
                return
            if (method == "streamRawPredict") != bool(body.get("stream")):
                raise GoogleError(400, "INVALID_ARGUMENT", f"{method} needs \"stream\": "
                                  f"{'true' if method == 'streamRawPredict' else 'false'} in the body.")
            body["model"] = model.partition("@")[0]
            path = "/v1/messages"
        headers = {**req.headers, "x-api-key": "vertex", "anthropic-version": "2023-06-01"}
        await self.claude._handle(replace(req, path=path, json=body, headers=headers), resp)
