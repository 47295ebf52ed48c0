"""The Ollama adapter family: a caller's own Ollama server through its native API.

Every Ollama model is customizable (the server decides what exists), so:

* the schema of a model is built from its credentials, exactly as Dify's Ollama plugin builds
  it (:func:`llm_schema`, :func:`embedding_schema`): mode, context size, the upper bound of
  ``num_predict``, and the vision / function-call switches that turn on model features;
* model credentials are checked with a real call, as Dify does: a 5-token chat (``num_predict:
  5``) or one embedding; a server that is down, a model that is not pulled (404 ``model "x"
  not found, try pulling it first``) or a rejected key all fail the check;
* ``ListModels`` with credentials asks the server what it has (``GET /api/tags``) and, per
  model, what it can do (``POST /api/show`` → ``capabilities``, ``model_info.<arch>.context_length``).
  Old servers answer ``/api/show`` without ``capabilities``; then a model whose family is a
  BERT or whose name says "embed" is an embedding model and the rest are LLMs, and the
  caller's credential switches decide the features.
"""

from __future__ import annotations

from typing import Any

from engine.adapter import Adapter, CallContext, LLMRequest
from engine.entities import (
    AIModelEntity,
    FetchFrom,
    I18nObject,
    ModelFeature,
    ModelType,
    ParameterRule,
    ParameterType,
    ProviderEntity,
)
from engine.errors import CredentialsValidateFailedError, RuntimeFault
from engine.messages import ContentPart, PartKind, PromptMessage, Role
from engine.options import ProtocolOptions
from engine.templates import fill_customizable_rule
from providers.kit import http
from providers.kit.concurrency import gather_all

from . import client
from .chat import OllamaChat
from .options import OllamaOptions

PING_TOKENS = 5
_SHOW_PARALLEL = 8


def _int(value: Any, default: int) -> int:
    try:
        return int(float(value)) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default


def _rule(name: str, kind: ParameterType, label: str, help_text: str, template: str | None = None,
          **kw: Any) -> ParameterRule:
    rule = ParameterRule(name=name, type=kind, use_template=template, label=I18nObject.plain(label),
                         help=I18nObject.plain(help_text), **kw)
    return fill_customizable_rule(rule) if template else rule


def llm_rules(max_tokens: int) -> list[ParameterRule]:
    """Dify's Ollama rule set (names are Ollama's own option keys)."""
    f, i, s, b = ParameterType.FLOAT, ParameterType.INT, ParameterType.STRING, ParameterType.BOOLEAN
    return [
        _rule("temperature", f, "Temperature", "Higher values make answers more creative. (Ollama default: 0.8)",
              "temperature", default=0.1, min=0, max=1),
        _rule("top_p", f, "Top P", "Works with top-k: higher values give more diverse text. (Default: 0.9)",
              "top_p", default=0.9, min=0, max=1),
        _rule("top_k", i, "Top K", "Sample only from the K most likely tokens. (Default: 40)", min=1, max=100),
        _rule("repeat_penalty", f, "Repeat Penalty", "How strongly to penalise repetitions. (Default: 1.1)",
              min=-2, max=2),
        _rule("num_predict", i, "Num Predict",
              "Most tokens to generate. (Default: 128, -1 = infinite generation, -2 = fill context)",
              "max_tokens", default=512 if max_tokens >= 768 else 128, min=-2, max=max_tokens),
        _rule("mirostat", i, "Mirostat sampling", "0 = disabled, 1 = Mirostat, 2 = Mirostat 2.0.", min=0, max=2),
        _rule("mirostat_eta", f, "Mirostat Eta", "How quickly Mirostat reacts to feedback. (Default: 0.1)",
              precision=1),
        _rule("mirostat_tau", f, "Mirostat Tau", "Balance between coherence and diversity. (Default: 5.0)",
              precision=1),
        _rule("num_ctx", i, "Size of context window", "Context window used to generate the next token.",
              default=2048, min=1),
        _rule("num_gpu", i, "GPU Layers", "Number of layers to offload to the GPU(s).", default=1, min=-1),
        _rule("num_thread", i, "Num Thread", "Threads used for computation (default: detected).", min=1),
        _rule("repeat_last_n", i, "Repeat last N", "How far back to look to prevent repetition. (-1 = num_ctx)",
              min=-1),
        _rule("tfs_z", f, "TFS Z", "Tail free sampling; 1.0 disables it.", precision=1),
        _rule("seed", i, "Seed", "Random seed; the same seed and prompt give the same text."),
        _rule("keep_alive", s, "Keep Alive", "How long the model stays loaded, e.g. 10m or 24h (default 5m)."),
        _rule("format", s, "Format", "Answer format; the only accepted value is json.", options=["json"]),
        _rule("json_schema", s, "JSON Schema", "Answer in the format this JSON Schema defines."),
        _rule("think", b, "Think", "Let a thinking model reason before it answers."),
    ]


def llm_schema(model: str, credentials: dict[str, Any]) -> AIModelEntity:
    features: list[ModelFeature] = []
    if credentials.get("vision_support") == "true":
        features.append(ModelFeature.VISION)
    if credentials.get("function_call_support") == "true":
        features += [ModelFeature.TOOL_CALL, ModelFeature.MULTI_TOOL_CALL, ModelFeature.STREAM_TOOL_CALL]
    mode = "completion" if credentials.get("mode") == "completion" else "chat"
    return AIModelEntity(
        model=model, label=I18nObject.plain(model), model_type=ModelType.LLM, features=features,
        fetch_from=FetchFrom.CUSTOMIZABLE_MODEL,
        model_properties={"mode": mode, "context_size": _int(credentials.get("context_size"), 4096)},
        parameter_rules=llm_rules(_int(credentials.get("max_tokens"), 4096)),
    )


def embedding_schema(model: str, credentials: dict[str, Any]) -> AIModelEntity:
    return AIModelEntity(
        model=model, label=I18nObject.plain(model), model_type=ModelType.TEXT_EMBEDDING,
        fetch_from=FetchFrom.CUSTOMIZABLE_MODEL,
        model_properties={"context_size": _int(credentials.get("context_size"), 512), "max_chunks": 1},
    )


def _kind(name: str, tag: dict[str, Any], info: dict[str, Any] | None) -> ModelType:
    capabilities = info.get("capabilities") if info else None
    if isinstance(capabilities, list) and capabilities:
        return ModelType.TEXT_EMBEDDING if "embedding" in capabilities and "completion" not in capabilities \
            else ModelType.LLM
    given = tag.get("details")
    details: dict[str, Any] = given if isinstance(given, dict) else {}
    families = [str(details.get("family") or "")] + [str(f) for f in details.get("families") or ()]
    if any("bert" in f.lower() for f in families) or "embed" in name.lower():
        return ModelType.TEXT_EMBEDDING
    return ModelType.LLM


def _context_length(info: dict[str, Any] | None) -> int | None:
    model_info = info.get("model_info") if info else None
    if isinstance(model_info, dict):
        for key, value in model_info.items():
            if key.endswith(".context_length") and isinstance(value, int) and value > 0:
                return value
    return None


class OllamaAdapter(Adapter):
    options_model = OllamaOptions

    def __init__(self, entity: ProviderEntity, options: ProtocolOptions | None = None) -> None:
        super().__init__(entity, options)
        types = set(entity.supported_model_types)
        self.llm = OllamaChat() if ModelType.LLM in types else None
        if ModelType.TEXT_EMBEDDING in types:
            from .embeddings import OllamaEmbeddings

            self.text_embedding = OllamaEmbeddings()

    def customizable_schema(
        self, model: str, model_type: ModelType, credentials: dict[str, Any]
    ) -> AIModelEntity | None:
        if model_type is ModelType.LLM:
            return llm_schema(model, credentials)
        if model_type is ModelType.TEXT_EMBEDDING:
            return embedding_schema(model, credentials)
        return None

    async def validate_provider_credentials(self, ctx: CallContext) -> None:
        raise CredentialsValidateFailedError("Ollama has no provider credentials; validate each model instead")

    async def validate_model_credentials(self, ctx: CallContext) -> None:
        if ctx.model_type is ModelType.LLM and self.llm is not None:
            request = LLMRequest(
                messages=[PromptMessage(Role.USER, [ContentPart(PartKind.TEXT, text="ping")])],
                parameters={"num_predict": PING_TOKENS},
            )
            await self.llm.generate(ctx, request)
        elif ctx.model_type is ModelType.TEXT_EMBEDDING and self.text_embedding is not None:
            await self.text_embedding.embed(ctx, ["ping"], "document", None, "")
        else:
            raise CredentialsValidateFailedError(f"Ollama does not offer {ctx.model_type.value} models here")

    async def list_remote_models(self, ctx: CallContext, model_type: ModelType) -> list[AIModelEntity]:
        if model_type not in (ModelType.LLM, ModelType.TEXT_EMBEDDING):
            return []
        async with ctx.http.stream("GET", client.url(ctx, "tags"), headers=client.headers(ctx),
                                   deadline=ctx.deadline) as response:
            await http.check_status(response, http.error_message)
            listed = http.loads(await response.aread())
        tags = [m for m in (listed.get("models") if isinstance(listed, dict) else None) or ()
                if isinstance(m, dict) and (m.get("model") or m.get("name"))]
        infos = await gather_all([self._show(ctx, str(t.get("model") or t.get("name"))) for t in tags],
                                 limit=_SHOW_PARALLEL) if tags else []
        models: list[AIModelEntity] = []
        seen: set[str] = set()
        for tag, info in zip(tags, infos):
            name = str(tag.get("model") or tag.get("name"))
            if name in seen or _kind(name, tag, info) is not model_type:
                continue
            seen.add(name)
            credentials = dict(ctx.credentials)
            capabilities = info.get("capabilities") if info else None
            if isinstance(capabilities, list) and capabilities:
                credentials["vision_support"] = "true" if "vision" in capabilities else "false"
                credentials["function_call_support"] = "true" if "tools" in capabilities else "false"
            context = _context_length(info)
            if context:
                credentials["context_size"] = str(context)
            schema = self.customizable_schema(name, model_type, credentials)
            if schema is not None:
                models.append(schema)
        return models

    async def _show(self, ctx: CallContext, name: str) -> dict[str, Any] | None:
        """``/api/show`` of one model; None when the server cannot describe it."""
        try:
            async with ctx.http.stream("POST", client.url(ctx, "show"), headers=client.headers(ctx),
                                       content=http.dumps({"model": name}), deadline=ctx.deadline) as response:
                if response.status_code >= 400:
                    return None
                info = http.loads(await response.aread())
        except RuntimeFault:
            return None
        return info if isinstance(info, dict) else None
