"""OpenAI-style text embeddings: ``POST {base}/embeddings``.

Behaviour copied from Dify's OpenAI embedding model:
- a text longer than the model's ``context_size`` tokens is split into ``context_size``-token
  pieces; the piece vectors are averaged (weighted by piece length) and L2-normalised;
- inputs go out in batches of ``max_chunks`` (1 for unknown models, the safe choice for
  compatible servers that accept a single input only);
- a NaN in any vector is an error, never a silently broken index.

Batches run concurrently (bounded), and results are put back in input order by ``index``
because servers may answer out of order.
"""

from __future__ import annotations

import asyncio
import base64
import math
import sys
from array import array
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar

import httpx
import orjson

from engine._http.status import error_for_status, raise_for_status
from engine.adapter import CallContext
from engine.errors import InvokeError
from engine.messages import EmbeddingResult
from engine.tokenizers import encoding_for_model

from . import client

T = TypeVar("T")

# Upper bound on concurrent batch requests of one call: a 1000-text call with max_chunks 1
# must not open 1000 connections at once (and trip the provider's rate limit).
_MAX_PARALLEL = 16
# Tokenising megabytes of text takes real CPU; above this we do it off the event loop.
_THREAD_TOKENIZE_BYTES = 256 * 1024


def read_json(response: httpx.Response) -> Any:
    """Parse a 2xx JSON body; an ``{"error": ...}`` body under 200 raises the mapped error."""
    try:
        body = orjson.loads(response.content.strip() or b"null")
    except orjson.JSONDecodeError:
        raise InvokeError("The provider returned a response that is not JSON") from None
    if isinstance(body, dict) and body.get("error") and not (body.get("data") or body.get("results")):
        err = body["error"]
        message = str(err.get("message") or err) if isinstance(err, dict) else str(err)
        code = err.get("code") if isinstance(err, dict) else None
        status = code if isinstance(code, int) and 400 <= code < 600 else 500
        raise error_for_status(status, message)
    return body


async def gather_all(aws: Sequence[Awaitable[T]], limit: int = _MAX_PARALLEL) -> list[T]:
    """``asyncio.gather`` with a concurrency cap that cancels the rest on the first failure
    (plain gather would leave the other requests running after an error)."""
    if len(aws) == 1:
        return [await aws[0]]
    semaphore = asyncio.Semaphore(limit)

    async def bounded(aw: Awaitable[T]) -> T:
        async with semaphore:
            return await aw

    tasks = [asyncio.ensure_future(bounded(aw)) for aw in aws]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def decode_vector(raw: Any) -> list[float]:
    """A float list, or base64 of little-endian float32 (accepted whatever we asked for)."""
    if isinstance(raw, str):
        values = array("f")
        try:
            values.frombytes(base64.b64decode(raw))
        except (ValueError, TypeError):
            raise InvokeError("The provider returned an embedding that is not valid base64 float32") from None
        if sys.byteorder == "big":
            values.byteswap()
        return values.tolist()
    if isinstance(raw, list):
        try:
            return [float(x) for x in raw]
        except (TypeError, ValueError):
            raise InvokeError("The provider returned an embedding with non-numeric values") from None
    raise InvokeError("The provider returned an embedding in an unknown format")


def _check_finite(vector: list[float]) -> None:
    if any(map(math.isnan, vector)):
        raise InvokeError("The provider returned an embedding containing NaN")


def _combine(vectors: list[list[float]], weights: list[int]) -> list[float]:
    """Weighted mean of the piece vectors, L2-normalised (Dify's long-text rule)."""
    dims = len(vectors[0])
    if any(len(v) != dims for v in vectors):
        raise InvokeError("The provider returned embeddings of different sizes for one text")
    total = float(sum(weights)) or 1.0
    mean = [0.0] * dims
    for vector, weight in zip(vectors, weights):
        w = weight / total
        for i, x in enumerate(vector):
            mean[i] += x * w
    norm = math.sqrt(sum(x * x for x in mean))
    if not norm or math.isnan(norm):
        raise InvokeError("The provider returned embeddings that average to a zero or NaN vector")
    return [x / norm for x in mean]


def _split_text(text: str, model: str, context_size: int) -> list[tuple[str, int]]:
    """Cut ``text`` at token boundaries into pieces of at most ``context_size`` tokens.

    Pieces are sent as text (not token ids) so compatible servers with other tokenizers work;
    the cut is made at the character offset where a token starts, so no character is lost.
    """
    enc = encoding_for_model(model)
    tokens = enc.encode(text, disallowed_special=())
    if len(tokens) <= context_size:
        return [(text, len(tokens))]
    _, offsets = enc.decode_with_offsets(tokens)
    pieces: list[tuple[str, int]] = []
    start, n = 0, len(tokens)
    while start < n:
        end = min(start + context_size, n)
        # Never cut inside a character: a token that begins with a UTF-8 continuation byte
        # belongs with the token before it, so move the cut back to a character boundary.
        while start + 1 < end < n and 0x80 <= enc.decode_single_token_bytes(tokens[end])[0] < 0xC0:
            end -= 1
        hi = offsets[end] if end < n else len(text)
        pieces.append((text[offsets[start]:hi], end - start))
        start = end
    return pieces or [(text, len(tokens))]


def _plan(texts: list[str], model: str, context_size: int | None) -> tuple[list[str], list[int], list[int | None]]:
    """Pieces to send, the text each belongs to, and each piece's token count when known."""
    pieces: list[str] = []
    owners: list[int] = []
    counts: list[int | None] = []
    for i, text in enumerate(texts):
        # A token is at least one byte: a text with no more bytes than context_size cannot
        # need splitting, so most texts are never tokenised here.
        if not context_size or len(text.encode()) <= context_size:
            pieces.append(text)
            owners.append(i)
            counts.append(None)
            continue
        for piece, n in _split_text(text, model, context_size):
            pieces.append(piece)
            owners.append(i)
            counts.append(n)
    return pieces, owners, counts


def _int_prop(props: dict[str, Any], name: str, default: int | None) -> int | None:
    try:
        value = int(props.get(name) or 0)
    except (TypeError, ValueError):
        return default
    return value if value > 0 else default


class OpenAIEmbeddings:
    """TextEmbeddingModel for any provider that speaks OpenAI's embeddings API."""

    async def embed(
        self, ctx: CallContext, texts: list[str], input_type: str, dimensions: int | None, user: str
    ) -> EmbeddingResult:
        if not texts:
            return EmbeddingResult(model=ctx.model, embeddings=[], tokens=0)
        props = ctx.schema.model_properties if ctx.schema else {}
        context_size = _int_prop(props, "context_size", None)
        max_chunks = _int_prop(props, "max_chunks", 1) or 1

        if sum(len(t) for t in texts) > _THREAD_TOKENIZE_BYTES and context_size:
            pieces, owners, counts = await asyncio.to_thread(_plan, texts, ctx.model, context_size)
        else:
            pieces, owners, counts = _plan(texts, ctx.model, context_size)

        template = self._body_template(ctx, input_type, dimensions, user)
        batches = [(start, pieces[start:start + max_chunks]) for start in range(0, len(pieces), max_chunks)]
        results = await gather_all([self._post(ctx, template, batch) for _, batch in batches])

        vectors: list[list[float]] = []
        tokens = 0
        for (start, batch), (batch_vectors, reported) in zip(batches, results):
            vectors.extend(batch_vectors)
            if reported is None:
                reported = self._local_count(ctx.model, batch, counts[start:start + len(batch)])
            tokens += reported

        grouped: list[list[list[float]]] = [[] for _ in texts]
        weights: list[list[int]] = [[] for _ in texts]
        for owner, vector, count in zip(owners, vectors, counts):
            grouped[owner].append(vector)
            weights[owner].append(count or 1)
        embeddings = [g[0] if len(g) == 1 else _combine(g, w) for g, w in zip(grouped, weights)]
        return EmbeddingResult(model=ctx.model, embeddings=embeddings, tokens=tokens)

    async def count_tokens(self, ctx: CallContext, texts: list[str]) -> list[int]:
        enc = encoding_for_model(ctx.model)
        return [len(enc.encode(t, disallowed_special=())) if t else 0 for t in texts]

    @staticmethod
    def _body_template(ctx: CallContext, input_type: str, dimensions: int | None, user: str) -> dict[str, Any]:
        body: dict[str, Any] = {"model": client.model_id(ctx)}
        encoding = ctx.options.get("embedding_encoding", "float")
        if encoding:  # an explicit empty value means "this server rejects the field"
            body["encoding_format"] = encoding
        if dimensions:
            body["dimensions"] = int(dimensions)
        if user:
            body["user"] = user
        # Asymmetric models behind compatible APIs (NVIDIA: input_type query|passage).
        field = ctx.options.get("embedding_input_type_field")
        values = ctx.options.get("embedding_input_type_values")
        if field and isinstance(values, dict):
            value = values.get(input_type or "document")
            if value:
                body[str(field)] = value
        return body

    async def _post(
        self, ctx: CallContext, template: dict[str, Any], batch: list[str]
    ) -> tuple[list[list[float]], int | None]:
        body = dict(template, input=batch)
        response = await ctx.http.request(
            "POST", client.url(ctx, "embeddings"), headers=client.headers(ctx), content=client.dumps(body),
            params=client.query(ctx), deadline=ctx.deadline,
        )
        await raise_for_status(response, client.error_message)
        parsed = read_json(response)
        data = parsed.get("data") if isinstance(parsed, dict) else None
        if not isinstance(data, list) or len(data) != len(batch):
            raise InvokeError(
                f"The provider returned {len(data) if isinstance(data, list) else 0} embeddings "
                f"for {len(batch)} inputs"
            )
        ordered: list[list[float] | None] = [None] * len(batch)
        for position, item in enumerate(data):
            if not isinstance(item, dict):
                raise InvokeError("The provider returned a malformed embeddings list")
            index = item.get("index", position)
            if not isinstance(index, int) or not 0 <= index < len(batch) or ordered[index] is not None:
                raise InvokeError("The provider returned embeddings with invalid indexes")
            vector = decode_vector(item.get("embedding"))
            _check_finite(vector)
            ordered[index] = vector
        usage = parsed.get("usage") if isinstance(parsed, dict) else None
        reported = None
        if isinstance(usage, dict):
            value = usage.get("prompt_tokens") or usage.get("total_tokens")
            if isinstance(value, int | float) and value > 0:
                reported = int(value)
        return ordered, reported  # type: ignore[return-value]

    @staticmethod
    def _local_count(model: str, batch: list[str], known: list[int | None]) -> int:
        """Our own count when the server reports no usage (pieces already counted are reused)."""
        missing = [text for text, n in zip(batch, known) if n is None and text]
        total = sum(n for n in known if n)
        if missing:
            enc = encoding_for_model(model)
            total += sum(len(enc.encode(t, disallowed_special=())) for t in missing)
        return total
