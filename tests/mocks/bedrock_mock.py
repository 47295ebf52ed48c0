"""A faithful mock of Amazon Bedrock (bedrock-runtime + the agent runtime's Rerank) on the raw
HTTP/1.1 server (127.0.0.1, random port).

    async with BedrockMock(keys={"AKIDEXAMPLE": "secret"}, api_keys=["ABSK-test"]) as mock:
        creds = {"aws_access_key_id": "AKIDEXAMPLE", "aws_secret_access_key": "secret",
                 "aws_region": "us-west-2", "bedrock_endpoint_url": mock.url,
                 "bedrock_agent_endpoint_url": mock.url}
        mock.enqueue(throttle_in_stream(after_events=4))

Routes: ``POST /model/{modelId}/converse``, ``…/converse-stream``, ``…/invoke`` (Titan and
Cohere embedding bodies) and ``POST /rerank``.

Authentication is **verified**, not just parsed: the SigV4 signature is recomputed here from
the raw request (method, the path exactly as sent, encoded once more, the signed headers, the
SHA-256 of the body) with the known secret of the access key, and must match; a wrong secret or
a tampered header gives 403 ``InvalidSignatureException``, an unknown key id or a wrong session
token 403 ``UnrecognizedClientException``, an ``x-amz-date`` more than 15 minutes off 403
``InvalidSignatureException`` (expired). ``Authorization: Bearer <Bedrock API key>`` is accepted
for the keys in ``api_keys``. This verifier is written independently of the client's signer.

Converse validation follows the real API: alternating roles starting with ``user``, exactly one
key per content block, no blank text, ``toolUse``/``toolResult`` only with a ``toolConfig`` and
every ``toolUse`` answered in the next turn, inferenceConfig types, extended thinking budget
(>= 1024, < maxTokens) without temperature/topP/top_k, a known model family.

Replies are deterministic (as the Anthropic mock): "Echo: <last user text>"; with tools a short
text then one ``toolUse`` per tool (at most two) with :func:`expected_tool_input`; after tool
results "Tool results: ..."; with thinking a reasoning block first, signed (an HMAC of its text):
reasoning sent back must carry the signature issued for exactly its text, and with thinking on the
assistant turn a tool result answers must start with it. Streams are the binary
``application/vnd.amazon.eventstream``: no ``contentBlockStart`` for text, ``toolUse`` input split
into 5-character JSON fragments, a ``"p"`` padding field in every payload, ``metadata`` (usage)
after ``messageStop``, and the whole byte stream cut into writes at pseudo-random offsets (1 to
``max_write`` bytes, so frames split everywhere, preludes included).

Per-request scenarios (``mock.enqueue(...)``, FIFO, by operation): :func:`status` (any error
status with ``x-amzn-ErrorType`` and a JSON ``message``), :func:`model_error` (424 with
``originalStatusCode``), :func:`throttle_in_stream` / :func:`stream_exception` (an exception
frame inside the 200 after some events), :func:`corrupt_crc` (a frame whose checksum does not
match), :func:`truncate_after` (no ``messageStop``; optionally cut inside a frame),
:func:`no_metadata` (ends right after ``messageStop``), :func:`hang`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import random
import re
import struct
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from .bedrock_rules import ApiError, bad, model_family, sign, validate_converse
from .bedrock_wire import (
    SignatureCheck,
    _canonical_path,
    _canonical_query,
    _hmac,
    event_frame,
    exception_frame,
)
from .httpserver import MockServer, Request, Response, ServerMock

STRING_SUFFIX = " — café"  # non-ASCII in tool input, split across fragments
SERVICE = "bedrock"
MAX_SKEW = 15 * 60
_ARN = re.compile(r"^arn:aws(-[a-z-]+)?:bedrock:([a-z0-9-]+)::foundation-model/(.+)$")
RERANK_MODELS = {"cohere.rerank-v3-5:0", "amazon.rerank-v1:0"}


# ---------------------------------------------------------------------------------- scenarios


@dataclass
class Scenario:
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    operation: str = "converse-stream"


def status(code: int, error_type: str, message: str = "", body: dict[str, Any] | None = None,
           operation: str = "converse-stream", headers: dict[str, str] | None = None) -> Scenario:
    """An error before the stream: JSON ``{"message"}`` (+ body fields) and ``x-amzn-ErrorType``."""
    return Scenario("status", {"code": code, "type": error_type, "message": message or f"mock {error_type}",
                               "body": body or {}, "headers": headers or {}}, operation)


def model_error(original_status: int = 500, operation: str = "converse") -> Scenario:
    return status(424, "ModelErrorException", "The model returned an error.", {
        "originalStatusCode": original_status, "resourceName": "arn:aws:bedrock:us-west-2::foundation-model/x",
    }, operation)


def stream_exception(after_events: int, exception_type: str, message: str,
                     body: dict[str, Any] | None = None) -> Scenario:
    """An ``:message-type: exception`` frame after `after_events` events, then the stream ends."""
    return Scenario("exception", {"after": after_events, "type": exception_type, "message": message,
                                  "body": body or {}})


def throttle_in_stream(after_events: int = 4) -> Scenario:
    return stream_exception(after_events, "throttlingException", "Too many tokens, please wait before trying again.")


def corrupt_crc(after_events: int = 3, where: str = "message") -> Scenario:
    """Frame number `after_events` has a bad message CRC (where="message") or prelude CRC."""
    return Scenario("corrupt", {"after": after_events, "where": where})


def truncate_after(events: int = 4, mid_frame: bool = False, abort: bool = False) -> Scenario:
    """End after `events` events without messageStop; mid_frame: also send half the next frame."""
    return Scenario("truncate", {"after": events, "mid_frame": mid_frame, "abort": abort})


def no_metadata() -> Scenario:
    return Scenario("no_metadata")


def hang(send_headers: bool = True, max_seconds: float = 30.0) -> Scenario:
    return Scenario("hang", {"send_headers": send_headers, "max_seconds": max_seconds})


# ---------------------------------------------------------------------------------- replies


def approx_tokens(text: str) -> int:
    return math.ceil(len(text) / 4) if text else 0


def count_input_tokens(body: dict[str, Any]) -> int:
    payload = {"system": body.get("system"), "messages": body.get("messages"), "toolConfig": body.get("toolConfig")}
    return 3 + approx_tokens(json.dumps(payload, sort_keys=True, ensure_ascii=False))


def expected_tool_input(schema: dict[str, Any], text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, prop in (schema.get("properties") or {}).items():
        kind = prop.get("type")
        if prop.get("enum"):
            out[name] = prop["enum"][0]
        elif kind == "string":
            out[name] = text + STRING_SUFFIX
        elif kind == "integer":
            out[name] = 3
        elif kind == "number":
            out[name] = 1.5
        elif kind == "boolean":
            out[name] = True
        else:
            out[name] = {}
    return out


def _texts(content: list[dict[str, Any]]) -> list[str]:
    return [b["text"] for b in content if "text" in b]


def plan_reply(body: dict[str, Any], template: str) -> tuple[list[dict[str, Any]], str]:
    """(content blocks, stopReason) for a validated Converse request."""
    last = body["messages"][-1]
    results = [b["toolResult"] for b in last["content"] if "toolResult" in b] if last["role"] == "user" else []
    user_text = " ".join(_texts(last["content"])) if last["role"] == "user" else ""
    config = body.get("toolConfig") or {}
    tools = [t["toolSpec"] for t in config.get("tools") or []]
    choice = config.get("toolChoice") or {"auto": {}}
    extra = body.get("additionalModelRequestFields") or {}
    inference = body.get("inferenceConfig") or {}
    out: list[dict[str, Any]] = []
    if (extra.get("thinking") or {}).get("type") == "enabled":
        thought = f"The user wrote: {user_text}. Reply."
        out.append({"reasoningContent": {"reasoningText": {"text": thought, "signature": sign(thought)}}})
    if results:
        said = [" ".join(c["text"] for c in r["content"] if "text" in c) for r in results]
        out.append({"text": "Tool results: " + "; ".join(said)})
        return out, "end_turn"
    if tools and "tool" in choice:
        chosen = [t for t in tools if t["name"] == choice["tool"]["name"]]
    elif tools:
        chosen = tools[:2]
    else:
        chosen = []
    if chosen:
        if "auto" in choice:
            out.append({"text": "Let me check that."})
        for tool in chosen:
            out.append({"toolUse": {"toolUseId": "tooluse_" + uuid.uuid4().hex[:22], "name": tool["name"],
                                    "input": expected_tool_input(tool["inputSchema"]["json"], user_text)}})
        return out, "tool_use"
    text = template.format(text=user_text)
    for stop in inference.get("stopSequences") or ():
        if stop and stop in text:
            out.append({"text": text[:text.index(stop)]})
            return out, "stop_sequence"
    words = text.split(" ")
    limit = inference.get("maxTokens")
    if isinstance(limit, int) and len(words) > limit:
        out.append({"text": " ".join(words[:limit])})
        return out, "max_tokens"
    out.append({"text": text})
    return out, "end_turn"


def output_tokens(blocks: list[dict[str, Any]]) -> int:
    total = 0
    for b in blocks:
        if "text" in b:
            total += len(b["text"].split())
        elif "reasoningContent" in b:
            total += len(b["reasoningContent"].get("reasoningText", {}).get("text", "").split()) + 8
        else:
            total += 1 + approx_tokens(json.dumps(b["toolUse"]["input"]))
    return total


# ---------------------------------------------------------------------------------- embeddings


def expected_embedding(text: str, dims: int, salt: str = "", normalize: bool = True) -> list[float]:
    seed = hashlib.sha256(f"{salt}\x00{text}".encode()).digest()
    values: list[float] = []
    counter = 0
    while len(values) < dims:
        block = hashlib.sha256(seed + counter.to_bytes(4, "big")).digest()
        values.extend((v / 2**31) - 1.0 for v in struct.unpack(">8I", block))
        counter += 1
    values = values[:dims]
    if normalize:
        norm = math.sqrt(sum(v * v for v in values)) or 1.0
        values = [v / norm for v in values]
    return [round(v, 7) for v in values]


def rerank_score(query: str, doc: str) -> float:
    q = set(re.findall(r"\w+", query.lower()))
    d = set(re.findall(r"\w+", doc.lower()))
    overlap = len(q & d) / (len(q) or 1)
    return round(0.05 + 0.9 * overlap - 0.001 * (len(doc) % 7), 6)


# ---------------------------------------------------------------------------------- the mock


class BedrockMock(ServerMock):
    """keys: access key id → secret, or → (secret, session token) for temporary credentials;
    api_keys: accepted Bedrock API keys (Bearer)."""

    def __init__(self, keys: dict[str, Any] | None = None, api_keys: list[str] | tuple[str, ...] = (),
                 reply_template: str = "Echo: {text}", max_write: int = 23, seed: int = 7) -> None:
        self.keys: dict[str, tuple[str, str | None]] = {}
        for key_id, value in (keys or {"AKIDEXAMPLE": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}).items():
            self.keys[key_id] = value if isinstance(value, tuple) else (value, None)
        self.api_keys = set(api_keys)
        self.reply_template = reply_template
        self.max_write = max_write
        self.rng = random.Random(seed)
        self.server = MockServer(self._handle)
        self.pending: list[Scenario] = []
        self.signatures: list[SignatureCheck | None] = []  # per request: the verified signature (None: Bearer)
        self.last_canonical_request = ""

    def expected_reply(self, text: str) -> str:
        return self.reply_template.format(text=text)

    def enqueue(self, *scenarios: Scenario) -> None:
        self.pending.extend(scenarios)

    def _take(self, operation: str) -> Scenario | None:
        for i, sc in enumerate(self.pending):
            if sc.operation == operation:
                return self.pending.pop(i)
        return None

    # ------------------------------------------------------------------ authentication

    def verify(self, req: Request) -> SignatureCheck | None:
        """Recompute the request's signature; raises ApiError(403) when it does not hold."""
        auth = req.headers.get("authorization", "")
        if auth.startswith("Bearer "):
            if auth[7:] not in self.api_keys:
                raise ApiError(403, "UnrecognizedClientException", "Invalid API Key format: Must start with "
                               "pre-defined prefix")
            return None
        match = re.fullmatch(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request,"
                             r" ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})", auth)
        if not match:
            raise ApiError(403, "MissingAuthenticationTokenException" if not auth else "IncompleteSignatureException",
                           "Missing Authentication Token" if not auth else "Authorization header is malformed")
        key_id, date, region, service, signed, sent_signature = match.groups()
        if key_id not in self.keys:
            raise ApiError(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
        secret, token = self.keys[key_id]
        names = signed.split(";")
        if "host" not in names or "x-amz-date" not in names or names != sorted(names):
            raise ApiError(403, "IncompleteSignatureException", "host and x-amz-date must be signed")
        if token is not None and (req.headers.get("x-amz-security-token") != token
                                  or "x-amz-security-token" not in names):
            raise ApiError(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
        stamp = req.headers.get("x-amz-date", "")
        if not stamp.startswith(date) or service != SERVICE:
            raise ApiError(403, "InvalidSignatureException", "Credential should be scoped to a valid date and "
                           f"service '{SERVICE}'.")
        try:
            when = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except ValueError:
            raise ApiError(403, "IncompleteSignatureException", "Invalid X-Amz-Date") from None
        if abs(time.time() - when.timestamp()) > MAX_SKEW:
            raise ApiError(403, "InvalidSignatureException", "Signature expired: " + stamp)
        payload_hash = hashlib.sha256(req.body).hexdigest()
        if req.headers.get("x-amz-content-sha256", payload_hash) != payload_hash:
            raise ApiError(400, "XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does "
                           "not match what was computed.")
        raw_path, _, raw_query = req.target.partition("?")
        header_lines = []
        for name in names:
            values = [v for k, v in req.raw_headers if k.lower() == name]
            if not values:
                raise ApiError(403, "InvalidSignatureException", f"Signed header {name} is missing")
            header_lines.append(f"{name}:{','.join(' '.join(v.split()) for v in values)}\n")
        canonical = "\n".join([req.method, _canonical_path(raw_path), _canonical_query(raw_query),
                               "".join(header_lines), signed, payload_hash])
        scope = f"{date}/{region}/{service}/aws4_request"
        to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
        key = _hmac(_hmac(_hmac(_hmac(("AWS4" + secret).encode(), date), region), service), "aws4_request")
        expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        self.last_canonical_request = canonical  # for debugging a mismatch
        if not hmac.compare_digest(expected, sent_signature):
            raise ApiError(403, "InvalidSignatureException", "The request signature we calculated does not match "
                           "the signature you provided. Check your AWS Secret Access Key and signing method.")
        return SignatureCheck(key_id, canonical, names)

    # ------------------------------------------------------------------ handling

    def _headers(self, content_type: str = "application/json") -> dict[str, str]:
        return {"content-type": content_type, "x-amzn-requestid": str(uuid.uuid4())}

    async def _error(self, resp: Response, err: ApiError, headers: dict[str, str] | None = None) -> None:
        h = {**self._headers(), "x-amzn-errortype": f"{err.type}:http://internal.amazon.com/coral/com.amazon.bedrock/",
             **(headers or {})}
        await resp.send(err.status, h, json.dumps({"message": err.message, **err.body}).encode())

    async def _handle(self, req: Request, resp: Response) -> None:
        raw_path = req.target.partition("?")[0]
        segments = raw_path.split("/")
        if req.method == "POST" and len(segments) == 4 and segments[1] == "model" and \
                segments[3] in ("converse", "converse-stream", "invoke"):
            operation, model = segments[3], unquote(segments[2])
        elif req.method == "POST" and raw_path == "/rerank":
            operation, model = "rerank", ""
        else:
            await self._error(resp, ApiError(404, "UnknownOperationException", "Unknown operation"))
            return
        try:
            self.signatures.append(self.verify(req))
        except ApiError as err:
            self.signatures.append(None)
            await self._error(resp, err)
            return
        sc = self._take(operation)
        if sc is not None and sc.kind in ("status", "hang"):
            await self._scenario_response(resp, sc)
            return
        try:
            body = req.json
            if not isinstance(body, dict):
                raise ApiError(400, "SerializationException", "Could not parse the request body as JSON")
            if operation == "rerank":
                await resp.send(200, self._headers(), json.dumps(self._rerank(body)).encode())
                return
            if operation == "invoke":
                reply, tokens = self._invoke(model, body)
                h = {**self._headers(), "x-amzn-bedrock-input-token-count": str(tokens),
                     "x-amzn-bedrock-output-token-count": "0", "x-amzn-bedrock-invocation-latency": "42"}
                await resp.send(200, h, json.dumps(reply).encode())
                return
            validate_converse(body, model)
            blocks, stop_reason = plan_reply(body, self.reply_template)
        except ApiError as err:
            await self._error(resp, err)
            return
        usage = {"inputTokens": count_input_tokens(body), "outputTokens": output_tokens(blocks)}
        usage["totalTokens"] = usage["inputTokens"] + usage["outputTokens"]
        if operation == "converse":
            reply = {"output": {"message": {"role": "assistant", "content": blocks}}, "stopReason": stop_reason,
                     "usage": usage, "metrics": {"latencyMs": 321}}
            await resp.send(200, self._headers(), json.dumps(reply, ensure_ascii=False).encode())
            return
        await self._stream(resp, blocks, stop_reason, usage, sc)

    async def _scenario_response(self, resp: Response, sc: Scenario) -> None:
        p = sc.params
        if sc.kind == "status":
            await self._error(resp, ApiError(p["code"], p["type"], p["message"], p["body"]), p["headers"])
            return
        if p["send_headers"]:
            await resp.start(200, self._headers("application/vnd.amazon.eventstream"))
        await resp.wait_disconnected(p["max_seconds"])
        await resp.abort()

    # ------------------------------------------------------------------ operations

    def _invoke(self, model: str, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
        family = model_family(model)
        if family == "titan":
            extra = set(body) - {"inputText", "dimensions", "normalize", "embeddingTypes"}
            if extra:
                raise bad(f"Malformed input request: extraneous key [{min(extra)}] is not permitted")
            text = body.get("inputText")
            if not isinstance(text, str) or not text:
                raise bad("Malformed input request: expected minLength: 1")
            dims = body.get("dimensions", 1024)
            if dims not in (256, 512, 1024):
                raise bad("Malformed input request: dimensions must be 256, 512 or 1024")
            tokens = len(text.split())
            return {"embedding": expected_embedding(text, dims, model, body.get("normalize", True)),
                    "inputTextTokenCount": tokens}, tokens
        if family == "cohere":
            texts = body.get("texts")
            if not isinstance(texts, list) or not texts or len(texts) > 96:
                raise bad("Malformed input request: texts must contain 1 to 96 items")
            if body.get("input_type") not in ("search_document", "search_query", "classification", "clustering"):
                raise bad("Malformed input request: input_type is required")
            dims = body.get("output_dimension", 1536 if "v4" in model else 1024)
            vectors = [expected_embedding(t, dims, model + body["input_type"]) for t in texts]
            tokens = sum(len(t.split()) for t in texts)
            reply: dict[str, Any] = {"id": str(uuid.uuid4()), "texts": texts}
            if body.get("embedding_types"):
                reply.update(embeddings={"float": vectors}, response_type="embeddings_by_type")
            else:
                reply.update(embeddings=vectors, response_type="embeddings_floats")
            return reply, tokens
        raise bad("The provided model identifier is invalid.")

    def _rerank(self, body: dict[str, Any]) -> dict[str, Any]:
        queries = body.get("queries") or []
        if len(queries) != 1 or queries[0].get("type") != "TEXT":
            raise bad("queries must contain exactly one TEXT query")
        query = queries[0]["textQuery"]["text"]
        docs = []
        for source in body.get("sources") or []:
            inline = source.get("inlineDocumentSource") or {}
            if source.get("type") != "INLINE" or inline.get("type") != "TEXT":
                raise bad("only INLINE TEXT sources are supported by the mock")
            docs.append(inline["textDocument"]["text"])
        if not docs:
            raise bad("sources must not be empty")
        config = body.get("rerankingConfiguration") or {}
        inner = config.get("bedrockRerankingConfiguration") or {}
        match = _ARN.match((inner.get("modelConfiguration") or {}).get("modelArn", ""))
        if config.get("type") != "BEDROCK_RERANKING_MODEL" or not match or match.group(3) not in RERANK_MODELS:
            raise bad("The provided model ARN is invalid.")
        number = inner.get("numberOfResults", len(docs))
        if not isinstance(number, int) or not 1 <= number <= len(docs):
            raise bad("numberOfResults must be between 1 and the number of sources")
        ranked = sorted(range(len(docs)), key=lambda i: -rerank_score(query, docs[i]))
        return {"results": [{"index": i, "relevanceScore": rerank_score(query, docs[i])} for i in ranked[:number]]}

    # ------------------------------------------------------------------ streaming

    def _events(self, blocks: list[dict[str, Any]], stop_reason: str, usage: dict[str, Any]) -> list[tuple[str, dict]]:
        events: list[tuple[str, dict]] = [("messageStart", {"role": "assistant"})]
        for i, block in enumerate(blocks):
            if "text" in block:  # no contentBlockStart for text
                for piece in re.findall(r"\s*\S+|\s+$", block["text"]):
                    events.append(("contentBlockDelta", {"contentBlockIndex": i, "delta": {"text": piece}}))
            elif "reasoningContent" in block:
                reasoning = block["reasoningContent"]["reasoningText"]
                for piece in re.findall(r"\s*\S+", reasoning["text"]):
                    events.append(("contentBlockDelta", {"contentBlockIndex": i,
                                                         "delta": {"reasoningContent": {"text": piece}}}))
                events.append(("contentBlockDelta", {"contentBlockIndex": i,
                                                     "delta": {"reasoningContent": {"signature": reasoning["signature"]}}}))
            else:
                use = block["toolUse"]
                events.append(("contentBlockStart", {"contentBlockIndex": i, "start": {
                    "toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}}}))
                text = json.dumps(use["input"], ensure_ascii=False)
                for k in range(0, len(text), 5):
                    events.append(("contentBlockDelta", {"contentBlockIndex": i,
                                                         "delta": {"toolUse": {"input": text[k:k + 5]}}}))
            events.append(("contentBlockStop", {"contentBlockIndex": i}))
        events.append(("messageStop", {"stopReason": stop_reason}))
        events.append(("metadata", {"usage": usage, "metrics": {"latencyMs": 321}}))
        return events

    async def _write_split(self, resp: Response, data: bytes) -> None:
        pos = 0
        while pos < len(data):
            size = self.rng.randint(1, self.max_write)
            await resp.write(data[pos:pos + size])
            pos += size

    async def _stream(self, resp: Response, blocks: list[dict[str, Any]], stop_reason: str,
                      usage: dict[str, Any], sc: Scenario | None) -> None:
        await resp.start(200, self._headers("application/vnd.amazon.eventstream"))
        events = self._events(blocks, stop_reason, usage)
        if sc is not None and sc.kind == "no_metadata":
            events = events[:-1]
        out = bytearray()
        for n, (name, payload) in enumerate(events):
            frame = event_frame(name, payload, self.rng)
            if sc is not None and n == sc.params.get("after"):
                if sc.kind == "exception":
                    out += exception_frame(sc.params["type"], {"message": sc.params["message"], **sc.params["body"]})
                    break
                if sc.kind == "corrupt":
                    broken = bytearray(frame)
                    broken[-6 if sc.params["where"] == "message" else 9] ^= 0xFF
                    out += broken
                    out += frame  # what follows must never be reached
                    continue
                if sc.kind == "truncate":
                    if sc.params["mid_frame"]:
                        out += frame[: len(frame) // 2]
                    await self._write_split(resp, bytes(out))
                    if sc.params["abort"]:
                        await resp.abort()
                        return
                    await resp.end()
                    return
            out += frame
        await self._write_split(resp, bytes(out))
        await resp.end()
