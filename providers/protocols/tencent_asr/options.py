"""The ``runtime:`` options of Tencent Cloud's ASR protocol."""

from __future__ import annotations

from providers.kit.options import HTTPOptions


class TencentASROptions(HTTPOptions):
    endpoint_credential: str | None = None  # credential that overrides the endpoint host
    engine_type: str | None = None  # default EngSerViceType, e.g. 16k_zh
    first_channel_only: int | None = None  # ChannelNum / first-channel switch sent to the API
