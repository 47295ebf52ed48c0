"""The Tencent Cloud ASR adapter family (Dify's ``tencent`` provider): speech-to-text only.

One predefined model, ``tencent``, under the provider credentials of Dify's form: ``app_id``,
``secret_id`` and ``secret_key`` (plus our optional ``tencent_asr_endpoint``, which replaces the
scheme and host of ``https://asr.cloud.tencent.com`` for a proxy or a test server). The wire
format, signature and error codes are in :mod:`.protocol`.

Query of every request, as Dify's ``flash_recognizer.py`` sends it: ``secretid``, ``timestamp``,
``engine_type``, ``voice_format``, ``speaker_diarization=0``, ``filter_dirty=0``,
``filter_modal=0``, ``filter_punc=0``, ``convert_num_mode=1``, ``word_info=0``,
``first_channel_only``. Differences from Dify, on purpose:

* ``voice_format`` is the real format (from the request, else sniffed from magic bytes); Dify
  always says ``mp3``. Formats Tencent does not decode (flac, webm, ...) are refused before
  uploading.
* ``first_channel_only`` comes from ``runtime.first_channel_only`` (default 0: every channel is
  recognised and the texts are joined); Dify sends 1.
* ``engine_type`` follows the request's language where Tencent has an engine for it (``zh`` →
  ``16k_zh``, ``en`` → ``16k_en``, ``yue`` → ``16k_yue``, ``ja`` → ``16k_ja``, ``ko`` → ``16k_ko``),
  else ``runtime.engine_type`` (default ``16k_zh``, Dify's).
* A non-zero ``code`` is an error (Dify returns the error text as the transcript).

Credentials are checked as Dify checks them: by transcribing a small audio file. Dify ships a
demo recording; we generate half a second of 16 kHz mono silence as a WAV, so the check needs no
bundled file. Tencent answers code 0 for valid credentials (with an empty transcript) and 4002
for a bad SecretId/SecretKey or AppID, which fails the check.

``runtime:`` options of the provider YAML (all optional): ``base_url`` (default endpoint),
``endpoint_credential`` (``tencent_asr_endpoint``), ``engine_type`` (``16k_zh``),
``first_channel_only`` (0).
"""

from __future__ import annotations

import time

from engine._http.status import error_for_status
from engine.adapter import Adapter, CallContext
from engine.entities import ModelType, ProviderEntity
from engine.errors import (
    CredentialsValidateFailedError,
    FieldViolation,
    InvokeBadRequestError,
    InvokeError,
    bad_request,
)
from engine.options import ProtocolOptions
from providers.kit.audio import silent_wav
from providers.kit.http import loads

from . import protocol
from .options import TencentASROptions

CHECK_SECONDS = 0.5
DEFAULT_ENGINE = "16k_zh"
LANGUAGE_ENGINES = {"zh": "16k_zh", "en": "16k_en", "yue": "16k_yue", "ja": "16k_ja", "ko": "16k_ko"}
FIXED_QUERY = {"speaker_diarization": "0", "filter_dirty": "0", "filter_modal": "0", "filter_punc": "0",
               "convert_num_mode": "1", "word_info": "0"}


def _credential(ctx: CallContext, name: str) -> str:
    value = str(ctx.credentials.get(name) or "").strip()
    if not value:
        raise InvokeBadRequestError(f"credentials.{name} is required",
                                    field_violations=(FieldViolation(f"credentials.{name}", "required"),))
    return value


def engine_for(ctx: CallContext, language: str) -> str:
    primary = (language or "").strip().lower().replace("_", "-").split("-")[0]
    return LANGUAGE_ENGINES.get(primary) or protocol.options(ctx).engine_type or DEFAULT_ENGINE


def _first_channel_only(ctx: CallContext) -> str:
    return "1" if protocol.options(ctx).first_channel_only else "0"


class TencentFlashASR:
    """Speech2TextModel for Tencent Cloud ASR flash recognition."""

    async def transcribe(
        self, ctx: CallContext, audio: bytes, fmt: str, language: str, prompt: str, user: str
    ) -> str:
        if not audio:
            raise bad_request("audio", "the audio file is empty")
        app_id = _credential(ctx, "app_id")
        secret_id = _credential(ctx, "secret_id")
        secret_key = _credential(ctx, "secret_key")
        props = ctx.schema.model_properties if ctx.schema else {}
        try:
            limit = float(props.get("file_upload_limit") or 0) * 1024 * 1024
        except (TypeError, ValueError):
            limit = 0.0
        if limit and len(audio) > limit:
            raise bad_request("audio", f"the audio file is larger than the model's limit of "
                                       f"{props.get('file_upload_limit')} MB")
        params = {
            **FIXED_QUERY,
            "engine_type": engine_for(ctx, language),
            "voice_format": protocol.voice_format(audio, fmt, props),
            "first_channel_only": _first_channel_only(ctx),
            "secretid": secret_id,
            "timestamp": str(int(time.time())),
        }
        scheme, host = protocol.endpoint(ctx)
        url, authorization = protocol.signed_url(scheme, host, app_id, params, secret_key)
        headers = {"host": host, "authorization": authorization, "content-type": "application/octet-stream",
                   "accept": "application/json"}
        response = await ctx.http.request("POST", url, headers=headers, content=audio, deadline=ctx.deadline)
        body = loads(response.content) if response.content else None
        if response.status_code >= 400:
            message = str(body.get("message") or "") if isinstance(body, dict) else ""
            raise error_for_status(response.status_code, message, response.headers)
        if not isinstance(body, dict):
            raise InvokeError("The provider returned a response that is not a JSON object")
        return protocol.transcript(body)


class TencentASRAdapter(Adapter):
    options_model = TencentASROptions

    def __init__(self, entity: ProviderEntity, options: ProtocolOptions | None = None) -> None:
        super().__init__(entity, options)
        self.speech2text = self._asr = TencentFlashASR()

    async def validate_provider_credentials(self, ctx: CallContext) -> None:
        await self._asr.transcribe(ctx, silent_wav(CHECK_SECONDS), "wav", "", "", "")

    async def validate_model_credentials(self, ctx: CallContext) -> None:
        if ctx.model_type is not ModelType.SPEECH2TEXT:
            raise CredentialsValidateFailedError(f"Tencent does not offer {ctx.model_type.value} models")
        await self.validate_provider_credentials(ctx)
