"""LLMService: Generate, StreamGenerate, CountTokens."""

from __future__ import annotations

from modelruntime.v1 import llm_service_pb2 as pb
from modelruntime.v1 import llm_service_pb2_grpc as pb_grpc

from engine.adapter import LLMRequest
from engine.runtime import ModelRuntime

from .. import convert
from ._common import deadline, rpc


def _request(request: pb.GenerateRequest | pb.StreamGenerateRequest) -> LLMRequest:
    return LLMRequest(
        messages=convert.messages(request.messages),
        parameters=convert.struct_to_dict(request.model_parameters),
        tools=convert.tools(request.tools),
        tool_choice=convert.tool_choice(request.tool_choice, request.HasField("tool_choice")),
        stop=list(request.stop),
        user=request.user,
    )


class LLMServicer(pb_grpc.LLMServiceServicer):
    def __init__(self, runtime: ModelRuntime) -> None:
        self.runtime = runtime

    @rpc
    async def Generate(self, request, context):
        result = await self.runtime.generate(convert.target(request.target), _request(request), deadline(context))
        return convert.generate_response(result)

    @rpc
    async def StreamGenerate(self, request, context):
        chunks = self.runtime.stream(convert.target(request.target), _request(request), deadline(context))
        try:
            async for chunk in chunks:
                yield convert.stream_chunk(chunk)
        finally:
            await chunks.aclose()

    @rpc
    async def CountTokens(self, request, context):
        tokens = await self.runtime.count_llm_tokens(
            convert.target(request.target), convert.messages(request.messages), convert.tools(request.tools),
            deadline(context),
        )
        return pb.CountTokensResponse(tokens=tokens)
