"""The ``runtime:`` options of Tencent Cloud's ASR protocol."""

from __future__ import annotations

from providers.kit.options import HTTPOptions


class TencentASROptions(HTTPOptions):
    base_url: str | None = "https://asr.cloud.tencent.com"  # scheme and host of the flash API
    endpoint_credential: str = "tencent_asr_endpoint"  # credential that overrides the endpoint host
    engine_type: str = "16k_zh"  # EngSerViceType when the request's language has none of its own
    first_channel_only: bool = False  # recognise the first channel only (Dify sends 1)
