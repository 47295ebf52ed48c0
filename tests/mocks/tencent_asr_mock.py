"""A faithful mock of Tencent Cloud ASR flash recognition (``POST /asr/flash/v1/{appid}``).

    async with TencentASRMock() as mock:
        creds = mock.credentials()  # app_id, secret_id, secret_key, tencent_asr_endpoint
        ...
        assert mock.requests[-1].query_one("voice_format") == "wav"

What the server checks, in Tencent's order, answering **HTTP 200** with a non-zero ``code``:

* the query has ``secretid``, ``timestamp``, ``engine_type`` and ``voice_format`` (else 4001);
* authentication (else **4002**): the SecretId is known and belongs to the AppID of the path;
  ``timestamp`` is within ``window`` seconds (180) of the mock's clock; and ``Authorization`` equals
  base64(HMAC-SHA1(SecretKey, ``"POST" + Host + path + "?" + k=v&...``)), recomputed here from the
  request as received: the ``Host`` header actually sent, the raw path, and the query parameters
  sorted by name with their decoded values. The 4002 message quotes the SecretId, as vendors
  do, so a client must not pass it on;
* ``engine_type`` and ``voice_format`` are known values (else 4001), the body is not empty (4001);
* the audio decodes as ``voice_format`` says (else 4007): a WAV must parse (RIFF/WAVE, PCM), and
  the other formats must carry their magic bytes (``pcm`` is any even number of bytes).

Replies: ``{"request_id", "code": 0, "message": "success", "audio_duration": ms, "flash_result":
[{"channel_id", "text", "sentence_list": [...]}]}`` with one entry per WAV channel (only channel 0
when ``first_channel_only=1``). A silent channel has the text ``""``; otherwise the text is
:func:`expected_text` (it quotes the channel and the duration, with non-ASCII characters).

Scenarios (``mock.enqueue(...)``, FIFO): :func:`http_status` (an HTTP error with a JSON body),
:func:`reply_code` (HTTP 200 with that ``code`` and message).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import struct
import time
import uuid
import wave
from dataclasses import dataclass, field
from typing import Any, Self
from urllib.parse import parse_qsl

from .httpserver import MockServer, Request, Response

APP_ID = "1259220000"
SECRET_ID = "AKIDmockTencentAsrSecretId000"
SECRET_KEY = "mockTencentAsrSecretKey0000000"
ENGINES = {"16k_zh", "16k_en", "16k_yue", "16k_ja", "16k_ko", "16k_zh_en", "16k_zh_dialect", "8k_zh", "8k_en"}
VOICE_FORMATS = {"wav", "pcm", "ogg-opus", "speex", "silk", "mp3", "m4a", "aac", "amr"}
_MAGIC = {"mp3": (b"ID3",), "m4a": (), "aac": (), "amr": (b"#!AMR",), "ogg-opus": (b"OggS",), "speex": (b"OggS", b"Speex"),
          "silk": (b"#!SILK", b"\x02#!SILK")}


@dataclass
class Scenario:
    kind: str
    params: dict[str, Any] = field(default_factory=dict)


def http_status(code: int, message: str = "internal error") -> Scenario:
    return Scenario("http", {"code": code, "message": message})


def reply_code(code: int, message: str) -> Scenario:
    return Scenario("code", {"code": code, "message": message})


def expected_text(channel: int, duration_ms: int) -> str:
    return f"第{channel}声道：{duration_ms}毫秒的语音。"


def sign(secret_key: str, host: str, path: str, params: dict[str, str]) -> str:
    text = "POST" + host + path + "?" + "&".join(f"{k}={params[k]}" for k in sorted(params))
    return base64.b64encode(hmac.new(secret_key.encode(), text.encode(), hashlib.sha1).digest()).decode()


def tone_wav(channels: list[bool], seconds: float = 0.25, rate: int = 16000) -> bytes:
    """A 16-bit PCM WAV; each channel is a square wave (True) or silence (False)."""
    frames = int(rate * seconds)
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(len(channels))
        w.setsampwidth(2)
        w.setframerate(rate)
        data = bytearray()
        for i in range(frames):
            for loud in channels:
                data += struct.pack("<h", (8000 if (i // 20) % 2 else -8000) if loud else 0)
        w.writeframes(bytes(data))
    return out.getvalue()


class AsrError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class TencentASRMock:
    def __init__(self, app_id: str = APP_ID, secret_id: str = SECRET_ID, secret_key: str = SECRET_KEY,
                 window: float = 180.0) -> None:
        self.accounts = {secret_id: (secret_key, app_id)}
        self.app_id, self.secret_id, self.secret_key = app_id, secret_id, secret_key
        self.window = window
        self.server = MockServer(self._handle)
        self.pending: list[Scenario] = []

    async def start(self) -> TencentASRMock:
        await self.server.start()
        return self

    async def stop(self) -> None:
        await self.server.stop()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def requests(self) -> list[Request]:
        return self.server.requests

    def credentials(self, **overrides: str) -> dict[str, str]:
        return {"app_id": self.app_id, "secret_id": self.secret_id, "secret_key": self.secret_key,
                "tencent_asr_endpoint": self.url, **overrides}

    def enqueue(self, *scenarios: Scenario) -> None:
        self.pending.extend(scenarios)

    async def _json(self, resp: Response, body: Any, code: int = 200) -> None:
        await resp.send(code, {"content-type": "application/json; charset=utf-8"},
                        json.dumps(body, ensure_ascii=False).encode())

    async def _handle(self, req: Request, resp: Response) -> None:
        request_id = str(uuid.uuid4())
        if req.method != "POST" or not req.path.startswith("/asr/flash/v1/"):
            await resp.send(404, {"content-type": "text/plain"}, b"404 page not found")
            return
        if self.pending:
            sc = self.pending.pop(0)
            if sc.kind == "http":
                await self._json(resp, {"code": sc.params["code"], "message": sc.params["message"],
                                        "request_id": request_id}, sc.params["code"])
            else:
                await self._json(resp, {"request_id": request_id, "code": sc.params["code"],
                                        "message": sc.params["message"]})
            return
        try:
            result = self._recognize(req)
        except AsrError as err:
            await self._json(resp, {"request_id": request_id, "code": err.code, "message": err.message})
            return
        await self._json(resp, {"request_id": request_id, "code": 0, "message": "success", **result})

    def _authenticate(self, req: Request, params: dict[str, str]) -> None:
        app_id = req.path.removeprefix("/asr/flash/v1/")
        sid = params["secretid"]
        account = self.accounts.get(sid)
        if account is None or account[1] != app_id:
            raise AsrError(4002, f"鉴权失败：secretid {sid} is not valid for appid {app_id}")
        try:
            stamp = int(params["timestamp"])
        except ValueError:
            raise AsrError(4002, f"鉴权失败：timestamp is not a number (secretid {sid})") from None
        if abs(time.time() - stamp) > self.window:
            raise AsrError(4002, f"鉴权失败：timestamp expired (secretid {sid})")
        raw_path = req.target.split("?", 1)[0]
        expected = sign(account[0], req.headers.get("host", ""), raw_path, params)
        if not hmac.compare_digest(expected, req.headers.get("authorization", "")):
            raise AsrError(4002, f"鉴权失败：signature mismatch (secretid {sid})")

    def _recognize(self, req: Request) -> dict[str, Any]:
        query = req.target.split("?", 1)[1] if "?" in req.target else ""
        pairs = parse_qsl(query, keep_blank_values=True)
        params = dict(pairs)
        missing = [k for k in ("secretid", "timestamp", "engine_type", "voice_format") if not params.get(k)]
        if missing or len(params) != len(pairs):
            raise AsrError(4001, f"请求参数不合法：missing or repeated {', '.join(missing) or 'parameter'}")
        self._authenticate(req, params)
        if params["engine_type"] not in ENGINES:
            raise AsrError(4001, f"请求参数不合法：engine_type {params['engine_type']} is not supported")
        fmt = params["voice_format"]
        if fmt not in VOICE_FORMATS:
            raise AsrError(4001, f"请求参数不合法：voice_format {fmt} is not supported")
        if not req.body:
            raise AsrError(4001, "请求参数不合法：audio data is empty")
        first_only = params.get("first_channel_only", "1") == "1"
        channels, duration = self._decode(fmt, req.body)
        if first_only:
            channels = channels[:1]
        results = []
        for c, loud in enumerate(channels):
            text = expected_text(c, duration) if loud else ""
            sentences = [{"text": text, "start_time": 0, "end_time": duration, "speaker_id": 0, "word_list": []}] \
                if text else []
            results.append({"channel_id": c, "text": text, "sentence_list": sentences})
        return {"audio_duration": duration, "flash_result": results}

    def _decode(self, fmt: str, body: bytes) -> tuple[list[bool], int]:
        """(per channel: is there sound, duration in ms)."""
        bad = AsrError(4007, f"音频解码失败，请检查上传音频数据格式与调用参数 voice_format={fmt} 一致")
        if fmt == "wav":
            try:
                with wave.open(io.BytesIO(body), "rb") as w:
                    n, width, rate, frames = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
                    data = w.readframes(frames)
            except (wave.Error, EOFError, struct.error):
                raise bad from None
            if width != 2 or not frames:
                raise bad
            samples = struct.unpack(f"<{len(data) // 2}h", data[:len(data) // 2 * 2])
            loud = [any(samples[i::n]) for i in range(n)]
            return loud, int(frames * 1000 / rate)
        if fmt == "pcm":
            if len(body) % 2:
                raise bad
            return [any(body)], len(body) // 32  # 16 kHz, 16-bit, mono
        head = body[:16]
        if fmt == "m4a":
            ok = head[4:8] == b"ftyp"
        elif fmt == "aac":
            ok = len(head) > 1 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0
        elif fmt == "mp3":
            ok = head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE6 in (0xE2, 0xE4, 0xE6))
        else:
            ok = head.startswith(_MAGIC[fmt])
        if not ok:
            raise bad
        return [True], 1000
