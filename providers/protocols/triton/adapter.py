"""The Triton Inference Server adapter family: a caller's own Triton server, LLMs only.

Every model is customizable (the server decides what exists). Its schema is built from the
credentials of Dify's form:

* ``server_url`` -- the server's HTTP/REST root;
* ``context_size`` -- the model's context (also the upper bound of ``max_tokens``; Dify's plugin
  reads a ``context_length`` key the form never sets, so it always uses 2048; we read the form's);
* ``completion_type`` -- ``chat`` or ``completion``: how messages become the prompt
  (:mod:`.transform`);
* ``stream`` -- ``true`` when the model is decoupled and can answer ``/generate_stream``;
  ``false`` streams through ``/generate`` (one piece).

Model credentials are checked as the brief of this runtime asks and as Dify does: first the
model's readiness (``GET /v2/models/{m}/ready``; anything but 200 fails), then a 5-token
``/generate`` of "ping", so a model that is loaded but does not speak the generate extension
(no ``text_input``) fails too.
"""

from __future__ import annotations

from typing import Any

from engine.adapter import Adapter, CallContext, LLMRequest
from engine.entities import AIModelEntity, ModelType, ParameterRule, ParameterType, ProviderEntity
from engine.errors import CredentialsValidateFailedError
from engine.messages import ContentPart, PartKind, PromptMessage, Role
from engine.options import ProtocolOptions
from providers.kit.customizable import form_int, rule, schema

from . import client
from .chat import TritonChat
from .options import TritonOptions

PING_TOKENS = 5
DEFAULT_CONTEXT = 2048


def _rule(name: str, kind: ParameterType, en: str, zh: str, **kw: Any) -> ParameterRule:
    return rule(name, kind, (en, zh), template=name, **kw)


def llm_rules(context: int) -> list[ParameterRule]:
    """Dify's rules (temperature, top_p, max_tokens) plus the sampling keys its plugin forwards."""
    f, i = ParameterType.FLOAT, ParameterType.INT
    return [
        _rule("temperature", f, "Temperature", "温度"),
        _rule("top_p", f, "Top P", "Top P"),
        _rule("top_k", i, "Top K", "Top K"),
        _rule("presence_penalty", f, "Presence Penalty", "存在惩罚"),
        _rule("frequency_penalty", f, "Frequency Penalty", "频率惩罚"),
        _rule("max_tokens", i, "Max Tokens", "最大生成长度", min=1, max=context, default=min(512, context)),
    ]


def llm_schema(model: str, credentials: dict[str, Any]) -> AIModelEntity:
    context = max(1, form_int(credentials.get("context_size"), DEFAULT_CONTEXT))
    mode = "completion" if credentials.get("completion_type") == "completion" else "chat"
    return schema(model, ModelType.LLM, {"mode": mode, "context_size": context}, rules=llm_rules(context))


class TritonAdapter(Adapter):
    options_model = TritonOptions

    def __init__(self, entity: ProviderEntity, options: ProtocolOptions | None = None) -> None:
        super().__init__(entity, options)
        self.llm = self._chat = TritonChat()

    def customizable_schema(
        self, model: str, model_type: ModelType, credentials: dict[str, Any]
    ) -> AIModelEntity | None:
        return llm_schema(model, credentials) if model_type is ModelType.LLM else None

    async def validate_provider_credentials(self, ctx: CallContext) -> None:
        raise CredentialsValidateFailedError(
            "Triton Inference Server has no provider credentials; validate each model instead")

    async def validate_model_credentials(self, ctx: CallContext) -> None:
        if ctx.model_type is not ModelType.LLM:
            raise CredentialsValidateFailedError(
                f"Triton Inference Server does not offer {ctx.model_type.value} models here")
        async with ctx.http.stream("GET", client.model_url(ctx, "ready"), headers=client.HEADERS,
                                   deadline=ctx.deadline) as response:
            ready = response.status_code == 200
            if not ready:
                await response.aread()
                detail = client.error_message(response)
        if not ready:
            reason = f": {detail}" if detail else ""
            raise CredentialsValidateFailedError(
                f"Model '{ctx.model}' is not ready on the Triton server (HTTP {response.status_code}){reason}",
                upstream_status=response.status_code,
            )
        request = LLMRequest(messages=[PromptMessage(Role.USER, [ContentPart(PartKind.TEXT, text="ping")])],
                             parameters={"max_tokens": PING_TOKENS})
        await self._chat.generate(ctx, request)
