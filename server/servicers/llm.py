"""LLMService: Generate, StreamGenerate, CountTokens."""

from __future__ import annotations

from modelruntime.v1 import llm_service_pb2 as pb
from modelruntime.v1 import llm_service_pb2_grpc as pb_grpc

from .. import convert
from ._common import Servicer, deadline, rpc


class LLMServicer(Servicer, pb_grpc.LLMServiceServicer):
    @rpc
    async def Generate(self, request, context):
        result = await self.runtime.generate(
            self.target(request), convert.llm_request(request, self.limits), deadline(context)
        )
        return convert.generate_response(result)

    @rpc
    async def StreamGenerate(self, request, context):
        chunks = self.runtime.stream(
            self.target(request), convert.llm_request(request, self.limits), deadline(context)
        )
        try:
            async for chunk in chunks:
                yield convert.stream_chunk(chunk)
        finally:
            await chunks.aclose()

    @rpc
    async def CountTokens(self, request, context):
        tokens = await self.runtime.count_llm_tokens(
            self.target(request), convert.messages(request.messages),
            convert.tools(request.tools), deadline(context),
        )
        return pb.CountTokensResponse(tokens=tokens)
