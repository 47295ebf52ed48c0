"""TextEmbeddingService and RerankService."""

from __future__ import annotations

from modelruntime.v1 import rerank_service_pb2_grpc as rr_grpc
from modelruntime.v1 import text_embedding_service_pb2 as te_pb
from modelruntime.v1 import text_embedding_service_pb2_grpc as te_grpc

from .. import convert
from ._common import Servicer, deadline, rpc


class TextEmbeddingServicer(Servicer, te_grpc.TextEmbeddingServiceServicer):
    @rpc
    async def Embed(self, request, context):
        result = await self.runtime.embed(
            self.target(request), list(request.texts), convert.input_type(request.input_type),
            convert.optional(request, "dimensions"), request.user, deadline(context),
        )
        return convert.embed_response(result)

    @rpc
    async def CountEmbeddingTokens(self, request, context):
        counts = await self.runtime.count_embedding_tokens(
            self.target(request), list(request.texts), deadline(context)
        )
        return te_pb.CountEmbeddingTokensResponse(tokens=counts, total_tokens=sum(counts))


class RerankServicer(Servicer, rr_grpc.RerankServiceServicer):
    @rpc
    async def Rerank(self, request, context):
        result = await self.runtime.rerank(
            self.target(request), request.query, list(request.documents),
            convert.optional(request, "score_threshold"), convert.optional(request, "top_n"), request.user,
            deadline(context),
        )
        return convert.rerank_response(result)
