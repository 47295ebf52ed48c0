"""One table of OpenAI-compatible providers → how each one's real API differs from OpenAI's.

Sources: /work/shared/reference/providers.md (Part A, B2, B9, B13, B19, B21, Part C) and the
providers' Dify plugins. Each :class:`Dialect` row drives :class:`~tests.mocks.compat_mock.
DialectMock` (what the server does) and the parametrized tests (which models to call and how
credentials look). Model tables come from our own provider YAML, so the mock knows every
predefined model; customizable providers add the models a user would configure.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from engine.entities import LLMMode, ModelType
from engine.loader import load_provider
from providers import DEFINITIONS

from .openai_common import ModelInfo

KEY = "sk-compat-0123456789abcdef"
ZHIPU_KEY = "3f1c9e2a7b6d4c1e.QmFzZTY0U2VjcmV0S2V5"  # id.secret
ENTRA_TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.entra.token"
MINIMAX_GROUP_ID = "1782658868262748467"

_KINDS = {ModelType.TEXT_EMBEDDING: "embedding", ModelType.RERANK: "rerank",
          ModelType.SPEECH2TEXT: "transcription", ModelType.TTS: "tts", ModelType.MODERATION: "moderation"}
_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "insufficient_quota",
          404: "invalid_request_error", 422: "invalid_request_error", 429: "rate_limit_exceeded"}
_TITLES = {400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 404: "Not Found",
           422: "Unprocessable Entity", 429: "Too Many Requests"}
_ZHIPU_CODES = {400: "1210", 401: "1002", 402: "1113", 404: "1211", 422: "1214", 429: "1302"}
_MINIMAX_CODES = {400: 2013, 401: 1004, 402: 1008, 404: 2013, 422: 2013, 429: 1002}
_SPARK_CODES = {400: 10013, 401: 11200, 402: 11201, 404: 10404, 422: 10013, 429: 11202}


def error_body(style: str, status: int, message: str, code: str | None = None) -> Any:
    """The provider's error body for an HTTP error (providers.md Part A/B21/B13, Part C)."""
    if style == "openrouter":  # error.code is the HTTP status, a number
        return {"error": {"code": status, "message": message, "metadata": {}}}
    if style == "mistral":
        if status == 401:
            return {"message": "Unauthorized", "request_id": "0a1b2c3d4e5f"}
        return {"object": "error", "message": message, "type": code or _TYPES.get(status, "api_error"),
                "param": None, "code": str(status)}
    if style == "detail":  # Xinference (FastAPI)
        return {"detail": message}
    if style == "zhipu":  # business codes as strings
        return {"error": {"code": code if (code or "").isdigit() else _ZHIPU_CODES.get(status, "500"),
                          "message": message}}
    if style == "azure":
        return {"error": {"code": code if code and not code.islower() else str(status), "message": message}}
    if style == "nvidia":  # problem+json from the NVCF gateway
        return {"type": "about:blank", "status": status, "title": _TITLES.get(status, "Error"), "detail": message}
    if style == "numeric":  # LocalAI
        return {"error": {"code": status, "message": message, "type": ""}}
    if style == "siliconflow":
        return {"code": 20000 + status, "message": message, "data": None}
    if style == "minimax":  # sent with HTTP 200 by the mock (errors_in_body)
        return {"id": "", "choices": None, "base_resp": {"status_code": _MINIMAX_CODES.get(status, 1000),
                                                         "status_msg": message}}
    if style == "spark":
        return {"code": _SPARK_CODES.get(status, 10000), "message": message, "sid": "cha000b0001@dx1"}
    return {"error": {"message": message, "type": _TYPES.get(status, "api_error"), "param": None, "code": code}}


@dataclass(frozen=True)
class Dialect:
    provider: str
    prefix: str = "/v1"
    # auth: bearer | optional (self-hosted: a key only when the server was started with one)
    #       | azure (api-key header or Entra Bearer) | zhipu (raw key or HS256 JWT)
    auth: str = "bearer"
    auth_message: str = "Incorrect API key provided"
    auth_code: str | None = "invalid_api_key"
    missing_auth_code: str | None = None
    errors: str = "openai"
    rate_limit_message: str = "Rate limit reached for requests"
    # usage: openai (choices:[] chunk when asked) | choices (choices[0].usage, Moonshot)
    #        | x_groq (Groq) | last_chunk (on the finish chunk, always) | none
    usage: str = "openai"
    comments: tuple[str, ...] = ()
    in_stream_error: str = "openai"
    whole_tool_calls: bool = False
    prompt_filter_first: bool = False
    deployments: bool = False
    forbidden_fields: tuple[str, ...] = ()
    embedding_input_type: bool = False
    rerank_path: str | None = None
    rerank_style: str = "jina"
    moderation: str = "openai"
    voices: frozenset[str] | None = None
    model_info: dict[str, dict[str, Any]] = field(default_factory=dict)
    models_list_bare: bool = False
    extra_models: tuple[ModelInfo, ...] = ()
    errors_in_body: bool = False  # errors answered with HTTP 200 (MiniMax base_resp)
    envelope: dict[str, Any] = field(default_factory=dict)  # fields on every JSON reply (Spark code/sid)
    chat_path: str = "/chat/completions"
    # thinking mode (on unless disabled): an assistant turn whose tool calls came with reasoning
    # must carry its reasoning_content back in every later request with tools (DeepSeek), else 400
    reasoning_history: bool = False
    final_full_message: bool = False  # the last chunk repeats the whole message (MiniMax)
    max_embedding_inputs: int | None = None  # larger batches get 400 (DashScope: 10)
    # native: "dashscope" serves rerank and TTS under /api/v1/services/... (tests/mocks/compat_native.py)
    native: str | None = None
    embedding_style: str = "openai"  # "minimax": {texts, type: db|query} → {vectors, base_resp}
    extra_credentials: dict[str, str] = field(default_factory=dict)  # sent with every call
    # ---- how the tests address the provider
    key: str = KEY
    key_var: str | None = "api_key"  # None: the server takes no key
    url_var: str | None = None  # credential carrying the server URL (self-hosted, Azure)
    url_suffix: str = ""  # appended to the mock URL in that credential (forms that want .../v1)
    model_var: str | None = None  # credential naming the wire model (Xinference UID, Ark endpoint id)
    customizable: dict[str, dict[str, str]] | None = None  # model type → extra model credentials
    chat_model: str = ""
    embedding_model: str | None = None
    rerank_model: str | None = None
    stt_model: str | None = None
    tts_model: str | None = None
    moderation_model: str | None = None
    validate_get: bool = False  # the credential check is GET /models/{id}
    validate_models: bool = False  # the provider check is GET /models

    def models(self) -> list[ModelInfo]:
        schema = load_provider(DEFINITIONS / self.provider)
        out = list(self.extra_models)
        for model_type, models in schema.models.items():
            for m in models:
                if model_type is ModelType.LLM:
                    kind = "completion" if m.mode is LLMMode.COMPLETION else "chat"
                else:
                    kind = _KINDS[model_type]
                out.append(ModelInfo(m.model, kind, owned_by=self.provider, dimensions=16))
        return out

    def stream_error(self, message: str, code: Any, request_id: str) -> dict[str, Any]:
        if self.in_stream_error == "openrouter":
            return {"id": "gen-" + request_id[4:20], "object": "chat.completion.chunk", "created": int(time.time()),
                    "provider": "Upstream", "error": {"code": code if isinstance(code, int) else 502,
                                                      "message": message},
                    "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}]}
        return {"error": {"message": message, "type": "server_error", "param": None, "code": code}}

    def credentials(self, mock_url: str, key: str | None = None, model_type: str = "llm") -> dict[str, str]:
        creds = {self.key_var: self.key if key is None else key} if self.key_var else {}
        creds.update(self.extra_credentials)
        if self.url_var:
            creds[self.url_var] = mock_url + self.url_suffix
        if self.customizable is not None:
            creds.update(self.customizable.get(model_type, {}))
        return creds


XI_INFO = {
    "qwen2.5-instruct-k3f9": {"model_type": "LLM", "model_ability": ["generate", "chat", "tools"],
                              "context_length": 32768, "model_name": "qwen2.5-instruct", "model_format": "pytorch"},
    "llama-2-generate-5a0e": {"model_type": "LLM", "model_ability": ["generate"], "context_length": 4096,
                              "model_name": "llama-2", "model_format": "ggufv2"},
    "bge-m3-e81c": {"model_type": "embedding", "model_name": "bge-m3", "dimensions": 1024, "max_tokens": 8192},
    "bge-reranker-v2-m3-1d0a": {"model_type": "rerank", "model_name": "bge-reranker-v2-m3"},
    "whisper-large-v3-9f2e": {"model_type": "audio", "model_name": "whisper-large-v3"},
    "ChatTTS-7c1b": {"model_type": "audio", "model_name": "ChatTTS"},
}
_CHAT = {"mode": "chat", "context_size": "32768", "function_calling_type": "tool_call",
         "stream_function_calling": "supported"}

DIALECTS: dict[str, Dialect] = {d.provider: d for d in (
    Dialect("deepseek", prefix="", auth_message="Authentication Fails (no such user)",
            auth_code="invalid_request_error", chat_model="deepseek-v4-flash", reasoning_history=True),
    Dialect("groq", prefix="/openai/v1", usage="x_groq", auth_message="Invalid API Key",
            chat_model="llama-3.3-70b-versatile", stt_model="whisper-large-v3-turbo"),
    Dialect("openrouter", prefix="/api/v1", errors="openrouter", comments=(": OPENROUTER PROCESSING",),
            in_stream_error="openrouter", auth_message="No auth credentials found", chat_model="openai/gpt-4o-mini",
            extra_models=(ModelInfo("openrouter/free", "chat"),
                          ModelInfo("mistralai/mistral-small-3.2-24b-instruct", "chat"))),
    Dialect("mistralai", usage="last_chunk", errors="mistral", whole_tool_calls=True, moderation="mistral",
            forbidden_fields=("user", "stream_options", "encoding_format"), auth_message="Unauthorized",
            chat_model="mistral-small-latest", embedding_model="mistral-embed",
            moderation_model="mistral-moderation-latest"),
    Dialect("moonshot", usage="choices", auth_message="Invalid Authentication",
            auth_code="invalid_authentication_error", chat_model="moonshot-v1-8k"),
    Dialect("togetherai", usage="last_chunk", models_list_bare=True, auth_message="Invalid API key provided",
            extra_models=(ModelInfo("meta-llama/Llama-3.3-70B-Instruct-Turbo", "chat"),),
            customizable={"llm": dict(_CHAT, context_size="131072", max_tokens_to_sample="8192")},
            chat_model="meta-llama/Llama-3.3-70B-Instruct-Turbo"),
    Dialect("fireworks", prefix="/inference/v1", key_var="fireworks_api_key", auth_message="unauthorized",
            chat_model="accounts/fireworks/models/llama-v3p3-70b-instruct",
            embedding_model="nomic-ai/nomic-embed-text-v1.5"),
    Dialect("siliconflow", errors="siliconflow", auth_message="Invalid token", rerank_path="/rerank",
            voices=frozenset(f"FunAudioLLM/CosyVoice2-0.5B:{v}" for v in ("alex", "benjamin", "charles", "david",
                                                                          "anna", "bella", "claire", "diana")),
            chat_model="deepseek-ai/DeepSeek-V3", embedding_model="BAAI/bge-m3",
            rerank_model="BAAI/bge-reranker-v2-m3", stt_model="FunAudioLLM/SenseVoiceSmall",
            tts_model="FunAudioLLM/CosyVoice2-0.5B"),
    Dialect("xinference", auth="optional", errors="detail", usage="last_chunk", rerank_path="/rerank",
            auth_message="Invalid credential", model_info=XI_INFO, url_var="server_url", validate_get=True,
            extra_models=(ModelInfo("qwen2.5-instruct-k3f9", "chat"), ModelInfo("llama-2-generate-5a0e", "completion"),
                          ModelInfo("bge-m3-e81c", "embedding", dimensions=16),
                          ModelInfo("bge-reranker-v2-m3-1d0a", "rerank"),
                          ModelInfo("whisper-large-v3-9f2e", "transcription"), ModelInfo("ChatTTS-7c1b", "tts")),
            model_var="model_uid", customizable={"llm": dict(_CHAT, model_uid="qwen2.5-instruct-k3f9"),
                          "text-embedding": {"model_uid": "bge-m3-e81c"},
                          "rerank": {"model_uid": "bge-reranker-v2-m3-1d0a"},
                          "speech2text": {"model_uid": "whisper-large-v3-9f2e"},
                          "tts": {"model_uid": "ChatTTS-7c1b", "voices": "alloy,echo"}},
            chat_model="qwen2.5-instruct", embedding_model="bge-m3", rerank_model="bge-reranker-v2-m3",
            stt_model="whisper-large-v3", tts_model="ChatTTS"),
    Dialect("localai", auth="optional", errors="numeric", usage="last_chunk", rerank_path="/rerank",
            auth_message="An authentication key is required", url_var="server_url",
            extra_models=(ModelInfo("llama-3.2-1b-instruct", "chat"), ModelInfo("text-embedding-ada-002", "embedding",
                                                                                dimensions=16),
                          ModelInfo("jina-reranker-v1-base-en", "rerank"), ModelInfo("whisper-1", "transcription")),
            customizable={"llm": {"completion_type": "chat_completion", "context_size": "8192",
                                  "function_calling_type": "tool_call"},
                          "text-embedding": {"context_size": "512"}, "rerank": {"context_size": "512"}},
            chat_model="llama-3.2-1b-instruct", embedding_model="text-embedding-ada-002",
            rerank_model="jina-reranker-v1-base-en", stt_model="whisper-1"),
    Dialect("azure_openai", prefix="", auth="azure", errors="azure", prompt_filter_first=True, deployments=True,
            key_var="openai_api_key", url_var="openai_api_base",
            auth_message="Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide "
                         "a valid key for an active subscription and use a correct regional API endpoint for your "
                         "resource.", auth_code="401",
            extra_models=(ModelInfo("prod-gpt4o", "chat"), ModelInfo("prod-embed", "embedding", dimensions=16),
                          ModelInfo("prod-whisper", "transcription"), ModelInfo("prod-tts", "tts")),
            customizable={"llm": {"openai_api_version": "2024-10-21", "base_model_name": "gpt-4o"},
                          "text-embedding": {"openai_api_version": "2024-10-21",
                                             "base_model_name": "text-embedding-3-small"},
                          "speech2text": {"openai_api_version": "2024-10-21", "base_model_name": "whisper-1"},
                          "tts": {"openai_api_version": "2024-10-21", "base_model_name": "tts-1"}},
            chat_model="prod-gpt4o", embedding_model="prod-embed", stt_model="prod-whisper", tts_model="prod-tts"),
    Dialect("zhipuai", prefix="/api/paas/v4", auth="zhipu", errors="zhipu", usage="last_chunk", key=ZHIPU_KEY,
            auth_message="Authorization Token非法，请确认Authorization Token正确传递。", auth_code="1002",
            missing_auth_code="1001", rate_limit_message="您当前使用该API的并发数过高，请降低并发，或联系客服增加限额。",
            chat_model="glm-4.5-flash", embedding_model="embedding-3"),
    Dialect("nvidia", errors="nvidia", embedding_input_type=True, rerank_path="/retrieval/nvidia/reranking",
            rerank_style="nvidia", auth_message="Authentication failed", chat_model="meta/llama-3.3-70b-instruct",
            embedding_model="nvidia/nv-embedqa-e5-v5", rerank_model="nvidia/nv-rerankqa-mistral-4b-v3"),
    Dialect("yi", auth_message="Invalid API key", chat_model="yi-lightning"),
    Dialect("perfxcloud", validate_models=True, chat_model="Qwen2.5-72B-Instruct", embedding_model="BAAI/bge-m3"),
    Dialect("zhinao", auth_message="Invalid API Key", chat_model="360gpt-turbo"),
    Dialect("upstage", key_var="upstage_api_key", auth_message="The API key is invalid.", chat_model="solar-mini",
            embedding_model="embedding-query"),
    Dialect("nvidia_nim", auth="optional", errors="detail", url_var="endpoint_url", url_suffix="/v1",
            auth_message="Unauthorized", extra_models=(ModelInfo("meta/llama-3.1-8b-instruct", "chat"),),
            customizable={"llm": dict(_CHAT, context_size="131072")}, chat_model="meta/llama-3.1-8b-instruct"),
    Dialect("chatglm", auth="none", key_var=None, url_var="api_base", usage="none", chat_model="chatglm3-6b"),
    Dialect("openllm", auth="none", key_var=None, url_var="server_url", usage="last_chunk", errors="detail",
            extra_models=(ModelInfo("meta-llama/Llama-3.2-1B-Instruct", "chat"),
                          ModelInfo("BAAI/bge-small-en-v1.5", "embedding", dimensions=16)),
            customizable={"llm": {"mode": "chat", "context_size": "8192"}, "text-embedding": {"context_size": "512"}},
            chat_model="meta-llama/Llama-3.2-1B-Instruct", embedding_model="BAAI/bge-small-en-v1.5"),
    Dialect("volcengine_maas", prefix="/api/v3", key_var="volc_api_key", url_var="api_endpoint_host",
            url_suffix="/api/v3", model_var="endpoint_id", auth_message="The API key format is incorrect.",
            auth_code="AuthenticationError",
            extra_models=(ModelInfo("ep-20250601123456-abcde", "chat"),
                          ModelInfo("ep-20250601123456-embed", "embedding", dimensions=16)),
            customizable={"llm": dict(_CHAT, endpoint_id="ep-20250601123456-abcde", base_model_name="Doubao-Seed-1.6",
                                      auth_method="api_key"),
                          "text-embedding": {"endpoint_id": "ep-20250601123456-embed", "base_model_name": "Custom", "context_size": "4096",
                                             "auth_method": "api_key"}},
            chat_model="doubao-seed-1.6", embedding_model="doubao-embedding"),
    Dialect("baichuan", auth_message="Invalid API key", chat_model="Baichuan4-Air",
            embedding_model="Baichuan-Text-Embedding"),
    Dialect("tongyi", prefix="/compatible-mode/v1", key_var="dashscope_api_key", max_embedding_inputs=10,
            native="dashscope", auth_message="Incorrect API key provided. ", chat_model="qwen-plus",
            embedding_model="text-embedding-v4", rerank_model="gte-rerank-v2", tts_model="qwen3-tts-flash"),
    Dialect("wenxin", prefix="/v2", rerank_path="/rerank", auth_message="IAM Certification failed",
            auth_code="invalid_iam_token", chat_model="ernie-4.5-turbo-128k", embedding_model="embedding-v1",
            rerank_model="bce-reranker-base_v1"),
    Dialect("hunyuan", auth_message="Incorrect API key provided", chat_model="hunyuan-turbos-latest",
            embedding_model="hunyuan-embedding"),
    Dialect("spark", errors="spark", usage="last_chunk", key_var="api_password",
            envelope={"code": 0, "message": "Success", "sid": "cha000b0001@dx18f1"},
            auth_message="HMAC signature cannot be verified", chat_model="4.0Ultra"),
    Dialect("minimax", errors="minimax", errors_in_body=True, chat_path="/text/chatcompletion_v2", usage="last_chunk",
            final_full_message=True, key_var="minimax_api_key", embedding_style="minimax",
            extra_credentials={"minimax_group_id": MINIMAX_GROUP_ID}, embedding_model="embo-01",
            envelope={"base_resp": {"status_code": 0, "status_msg": ""}},
            auth_message="login fail: Please carry the API secret key in the 'Authorization' field of the request header",
            chat_model="MiniMax-Text-01"),
)}


def with_type(model_type: str, dialect: Dialect) -> str | None:
    """The model a test calls for a model type (None when the provider does not offer it)."""
    return {"llm": dialect.chat_model, "text-embedding": dialect.embedding_model, "rerank": dialect.rerank_model,
            "speech2text": dialect.stt_model, "tts": dialect.tts_model,
            "moderation": dialect.moderation_model}[model_type]
