"""Speech2TextService and TTSService."""

from __future__ import annotations

from modelruntime.v1 import speech2text_service_pb2 as stt_pb
from modelruntime.v1 import speech2text_service_pb2_grpc as stt_grpc
from modelruntime.v1 import tts_service_pb2_grpc as tts_grpc

from .. import convert
from ._common import Servicer, deadline, rpc


class Speech2TextServicer(Servicer, stt_grpc.Speech2TextServiceServicer):
    @rpc
    async def Transcribe(self, request, context):
        text = await self.runtime.transcribe(
            self.target(request), request.audio, request.format, request.language,
            request.prompt, request.user, deadline(context),
        )
        return stt_pb.TranscribeResponse(text=text)


class TTSServicer(Servicer, tts_grpc.TTSServiceServicer):
    @rpc
    async def StreamSynthesize(self, request, context):
        chunks = self.runtime.synthesize(
            self.target(request), request.text, request.voice,
            convert.encoding(request.encoding), convert.optional(request, "speed"), request.user, deadline(context),
        )
        try:
            async for chunk in chunks:
                yield convert.audio_chunk(chunk)
        finally:
            await chunks.aclose()

    @rpc
    async def ListVoices(self, request, context):
        return convert.voices_response(self.runtime.voices(self.target(request), request.language))
