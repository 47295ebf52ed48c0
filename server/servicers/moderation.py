"""ModerationService."""

from __future__ import annotations

from modelruntime.v1 import moderation_service_pb2 as pb
from modelruntime.v1 import moderation_service_pb2_grpc as pb_grpc

from engine.runtime import ModelRuntime

from .. import convert
from ._common import deadline, rpc


class ModerationServicer(pb_grpc.ModerationServiceServicer):
    def __init__(self, runtime: ModelRuntime) -> None:
        self.runtime = runtime

    @rpc
    async def Moderate(self, request, context):
        result = await self.runtime.moderate(convert.target(request.target), request.text, request.user,
                                             deadline(context))
        response = pb.ModerateResponse(flagged=result.flagged, model=result.model)
        for c in result.categories:
            response.categories.add(name=c.name, flagged=c.flagged, score=c.score)
        return response
