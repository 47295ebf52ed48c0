"""Speech2TextService and TTSService."""

from __future__ import annotations

from modelruntime.v1 import speech2text_service_pb2 as stt_pb
from modelruntime.v1 import speech2text_service_pb2_grpc as stt_grpc
from modelruntime.v1 import tts_service_pb2 as tts_pb
from modelruntime.v1 import tts_service_pb2_grpc as tts_grpc

from engine.runtime import ModelRuntime

from .. import convert
from ._common import deadline, rpc

_ENCODINGS = {
    tts_pb.AUDIO_ENCODING_MP3: "mp3", tts_pb.AUDIO_ENCODING_OPUS: "opus", tts_pb.AUDIO_ENCODING_AAC: "aac",
    tts_pb.AUDIO_ENCODING_FLAC: "flac", tts_pb.AUDIO_ENCODING_WAV: "wav", tts_pb.AUDIO_ENCODING_PCM: "pcm",
}
_ENCODINGS_PB = {v: k for k, v in _ENCODINGS.items()}


class Speech2TextServicer(stt_grpc.Speech2TextServiceServicer):
    def __init__(self, runtime: ModelRuntime) -> None:
        self.runtime = runtime

    @rpc
    async def Transcribe(self, request, context):
        text = await self.runtime.transcribe(
            convert.target(request.target), request.audio, request.format, request.language, request.prompt,
            request.user, deadline(context),
        )
        return stt_pb.TranscribeResponse(text=text)


class TTSServicer(tts_grpc.TTSServiceServicer):
    def __init__(self, runtime: ModelRuntime) -> None:
        self.runtime = runtime

    @rpc
    async def StreamSynthesize(self, request, context):
        chunks = self.runtime.synthesize(
            convert.target(request.target), request.text, request.voice, _ENCODINGS.get(request.encoding, ""),
            request.speed if request.HasField("speed") else None, request.user, deadline(context),
        )
        try:
            async for chunk in chunks:
                yield tts_pb.StreamSynthesizeResponse(
                    audio=chunk.data, encoding=_ENCODINGS_PB.get(chunk.encoding, 0), mime_type=chunk.mime_type,
                    sample_rate_hz=chunk.sample_rate_hz,
                )
        finally:
            await chunks.aclose()

    @rpc
    async def ListVoices(self, request, context):
        response = tts_pb.ListVoicesResponse()
        for v in self.runtime.voices(convert.target(request.target), request.language):
            response.voices.add(id=v.id, name=v.name, languages=v.languages)
        return response
