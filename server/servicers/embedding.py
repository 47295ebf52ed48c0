"""TextEmbeddingService and RerankService."""

from __future__ import annotations

from modelruntime.v1 import rerank_service_pb2 as rr_pb
from modelruntime.v1 import rerank_service_pb2_grpc as rr_grpc
from modelruntime.v1 import text_embedding_service_pb2 as te_pb
from modelruntime.v1 import text_embedding_service_pb2_grpc as te_grpc

from engine.pricing import decimal_str
from engine.runtime import ModelRuntime

from .. import convert
from ._common import deadline, rpc

_INPUT_TYPES = {te_pb.EMBEDDING_INPUT_TYPE_QUERY: "query"}


class TextEmbeddingServicer(te_grpc.TextEmbeddingServiceServicer):
    def __init__(self, runtime: ModelRuntime) -> None:
        self.runtime = runtime

    @rpc
    async def Embed(self, request, context):
        result = await self.runtime.embed(
            convert.target(request.target), list(request.texts), _INPUT_TYPES.get(request.input_type, "document"),
            request.dimensions if request.HasField("dimensions") else None, request.user, deadline(context),
        )
        response = te_pb.EmbedResponse(model=result.model)
        add = response.embeddings.add
        for vector in result.embeddings:
            add().values.extend(vector)
        u = result.usage
        if u is not None:
            out = response.usage
            out.tokens, out.total_tokens, out.currency, out.latency = u.tokens, u.total_tokens, u.currency, u.latency
            out.unit_price, out.price_unit = decimal_str(u.unit_price), decimal_str(u.price_unit)
            out.total_price = decimal_str(u.total_price)
        return response

    @rpc
    async def CountEmbeddingTokens(self, request, context):
        counts = await self.runtime.count_embedding_tokens(
            convert.target(request.target), list(request.texts), deadline(context)
        )
        return te_pb.CountEmbeddingTokensResponse(tokens=counts, total_tokens=sum(counts))


class RerankServicer(rr_grpc.RerankServiceServicer):
    def __init__(self, runtime: ModelRuntime) -> None:
        self.runtime = runtime

    @rpc
    async def Rerank(self, request, context):
        result = await self.runtime.rerank(
            convert.target(request.target), request.query, list(request.documents),
            request.score_threshold if request.HasField("score_threshold") else None,
            request.top_n if request.HasField("top_n") else None, request.user, deadline(context),
        )
        response = rr_pb.RerankResponse(model=result.model)
        for d in result.docs:
            response.documents.add(index=d.index, text=d.text, score=d.score)
        return response
