"""ModerationService."""

from __future__ import annotations

from modelruntime.v1 import moderation_service_pb2_grpc as pb_grpc

from .. import convert
from ._common import Servicer, deadline, rpc


class ModerationServicer(Servicer, pb_grpc.ModerationServiceServicer):
    @rpc
    async def Moderate(self, request, context):
        result = await self.runtime.moderate(
            self.target(request), request.text, request.user, deadline(context)
        )
        return convert.moderate_response(result)
