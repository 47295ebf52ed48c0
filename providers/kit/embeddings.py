"""Embedding plumbing every protocol shares: batching, long-text splitting, vector decoding.

Behaviour follows Dify's OpenAI embedding model:
- a text longer than the model's ``context_size`` tokens is split into ``context_size``-token
  pieces; the piece vectors are averaged (weighted by piece length) and L2-normalised;
- inputs go out in batches of ``max_chunks``; batches run concurrently (bounded);
- a NaN in any vector is an error, never a silently broken index.

:func:`embed_in_batches` is the whole loop; a protocol supplies only "post one batch".
"""

from __future__ import annotations

import asyncio
import base64
import math
import sys
from array import array
from collections.abc import Awaitable, Callable
from typing import Any

from engine.adapter import CallContext
from engine.errors import InvokeError
from engine.messages import EmbeddingResult
from engine.tokenizers import encoding_for_model

from .concurrency import gather_all

# Tokenising megabytes of text takes real CPU; above this we do it off the event loop.
THREAD_TOKENIZE_BYTES = 256 * 1024

# Post one batch of texts; answer the vectors in input order and the provider's token count
# (None when it reported none).
PostBatch = Callable[[list[str]], Awaitable[tuple[list[list[float]], int | None]]]


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


def check_finite(vector: list[float]) -> None:
    if any(map(math.isnan, vector)):
        raise InvokeError("The provider returned an embedding containing NaN")


def combine(vectors: list[list[float]], weights: list[int]) -> list[float]:
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


def split_text(text: str, model: str, context_size: int) -> list[tuple[str, int]]:
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


def plan(texts: list[str], model: str, context_size: int | None) -> tuple[list[str], list[int], list[int | None]]:
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
        for piece, n in split_text(text, model, context_size):
            pieces.append(piece)
            owners.append(i)
            counts.append(n)
    return pieces, owners, counts


def int_prop(props: dict[str, Any], name: str, default: int | None) -> int | None:
    try:
        value = int(props.get(name) or 0)
    except (TypeError, ValueError):
        return default
    return value if value > 0 else default


def local_count(model: str, texts: list[str], known: list[int | None] | None = None) -> int:
    """Our own token count when the provider reports none (pieces already counted are reused)."""
    known = known or [None] * len(texts)
    missing = [text for text, n in zip(texts, known) if n is None and text]
    total = sum(n for n in known if n)
    if missing:
        enc = encoding_for_model(model)
        total += sum(len(enc.encode(t, disallowed_special=())) for t in missing)
    return total


async def embed_in_batches(ctx: CallContext, texts: list[str], post: PostBatch, *, max_chunks: int = 1,
                           context_size: int | None = None, split: bool = True) -> EmbeddingResult:
    """Plan pieces, post them in concurrent batches, and put long texts back together.

    ``split=False`` sends every text whole (providers that truncate server-side).
    """
    if not texts:
        return EmbeddingResult(model=ctx.model, embeddings=[], tokens=0)
    size = context_size if split else None
    if size and sum(len(t) for t in texts) > THREAD_TOKENIZE_BYTES:
        pieces, owners, counts = await asyncio.to_thread(plan, texts, ctx.model, size)
    else:
        pieces, owners, counts = plan(texts, ctx.model, size)
    step = max(1, max_chunks)
    batches = [(start, pieces[start:start + step]) for start in range(0, len(pieces), step)]
    results = await gather_all([post(batch) for _, batch in batches])
    vectors: list[list[float]] = []
    tokens = 0
    for (start, batch), (batch_vectors, reported) in zip(batches, results):
        if len(batch_vectors) != len(batch):
            raise InvokeError(f"The provider returned {len(batch_vectors)} embeddings for {len(batch)} inputs")
        for vector in batch_vectors:
            check_finite(vector)
        vectors.extend(batch_vectors)
        tokens += reported if reported is not None else local_count(ctx.model, batch, counts[start:start + len(batch)])
    grouped: list[list[list[float]]] = [[] for _ in texts]
    weights: list[list[int]] = [[] for _ in texts]
    for owner, vector, count in zip(owners, vectors, counts):
        grouped[owner].append(vector)
        weights[owner].append(count or 1)
    embeddings = [g[0] if len(g) == 1 else combine(g, w) for g, w in zip(grouped, weights)]
    return EmbeddingResult(model=ctx.model, embeddings=embeddings, tokens=tokens)
