"""The Hugging Face adapter family (Dify's ``huggingface_hub``): text generation and feature
extraction on the serverless router or on the caller's Inference Endpoints.

Every model is customizable, with Dify's form: ``huggingfacehub_api_type``
(``hosted_inference_api`` | ``inference_endpoints``), ``huggingfacehub_api_token``, and for
endpoints ``huggingfacehub_endpoint_url``, ``task_type`` and (embeddings) ``huggingface_namespace``.
Schemas are Dify's (:mod:`.transform`).

Credential checks follow Dify's:

* LLM, serverless: the Hub's model card (``GET {hub}/api/models/{model}``) must not turn the
  Inference API off (``cardData.inference: false``) and its ``pipeline_tag`` must be
  ``text-generation`` or ``text2text-generation``; that tag becomes ``task_type`` in the returned
  credentials, as in Dify. Endpoints: ``task_type`` must be one of the two. Then one real
  generation ("Who are you?", 5 new tokens);
* embeddings, serverless: the card's ``pipeline_tag`` must be ``feature-extraction`` (or
  ``sentence-similarity``, which the serverless API also serves as feature extraction; Dify
  refuses those). Endpoints: ``task_type`` must be ``feature-extraction`` and the namespace's
  endpoint list (``GET {endpoints_api}/v2/endpoint/{namespace}``) must show this endpoint URL
  serving this model repository. Then one real embedding of "hello world".
"""

from __future__ import annotations

from typing import Any

from engine.adapter import Adapter, CallContext, LLMRequest
from engine.entities import AIModelEntity, ModelType, ProviderEntity
from engine.errors import CredentialsValidateFailedError
from engine.messages import ContentPart, PartKind, PromptMessage, Role
from engine.options import ProtocolOptions

from . import client
from .chat import HuggingFaceChat
from .embeddings import HuggingFaceEmbeddings
from .options import HuggingFaceOptions
from .transform import FEATURE_EXTRACTION, LLM_TASKS, embedding_schema, llm_schema

PING_TOKENS = 5
EMBEDDING_TAGS = (FEATURE_EXTRACTION, "sentence-similarity")


class HuggingFaceAdapter(Adapter):
    options_model = HuggingFaceOptions

    def __init__(self, entity: ProviderEntity, options: ProtocolOptions | None = None) -> None:
        super().__init__(entity, options)
        types = set(entity.supported_model_types)
        self.llm = HuggingFaceChat() if ModelType.LLM in types else None
        self.text_embedding = HuggingFaceEmbeddings() if ModelType.TEXT_EMBEDDING in types else None

    def customizable_schema(
        self, model: str, model_type: ModelType, credentials: dict[str, Any]
    ) -> AIModelEntity | None:
        if model_type is ModelType.LLM:
            return llm_schema(model)
        if model_type is ModelType.TEXT_EMBEDDING:
            return embedding_schema(model)
        return None

    async def validate_provider_credentials(self, ctx: CallContext) -> None:
        raise CredentialsValidateFailedError("Hugging Face has no provider credentials; validate each model instead")

    async def validate_model_credentials(self, ctx: CallContext) -> None:
        if client.api_type(ctx) not in (client.HOSTED, client.ENDPOINTS):
            raise CredentialsValidateFailedError("Huggingface Hub Endpoint Type is invalid.")
        if not client.token(ctx):
            raise CredentialsValidateFailedError("Huggingface Hub Access Token must be provided.")
        if ctx.model_type is ModelType.LLM and self.llm is not None:
            await self._validate_llm(ctx)
        elif ctx.model_type is ModelType.TEXT_EMBEDDING and self.text_embedding is not None:
            await self._validate_embedding(ctx)
        else:
            raise CredentialsValidateFailedError(f"Hugging Face does not offer {ctx.model_type.value} models here")

    async def _validate_llm(self, ctx: CallContext) -> None:
        if client.api_type(ctx) == client.HOSTED:
            ctx.credentials["task_type"] = await self._hosted_task(ctx, LLM_TASKS)
        if client.task_type(ctx, "") not in LLM_TASKS:
            raise CredentialsValidateFailedError(
                "Huggingface Hub Task Type must be one of text2text-generation, text-generation.")
        request = LLMRequest(messages=[PromptMessage(Role.USER, [ContentPart(PartKind.TEXT, text="Who are you?")])],
                             parameters={"max_new_tokens": PING_TOKENS})
        await self.llm.generate(ctx, request)  # type: ignore[union-attr]

    async def _validate_embedding(self, ctx: CallContext) -> None:
        if client.api_type(ctx) == client.HOSTED:
            await self._hosted_task(ctx, EMBEDDING_TAGS)
        else:
            if client.task_type(ctx, "") != FEATURE_EXTRACTION:
                raise CredentialsValidateFailedError("Huggingface Hub Task Type is invalid.")
            await self._check_endpoint_repository(ctx)
        await self.text_embedding.embed(ctx, ["hello world"], "document", None, "")  # type: ignore[union-attr]

    async def _hosted_task(self, ctx: CallContext, valid: tuple[str, ...]) -> str:
        """The model card's pipeline tag, checked against ``valid``."""
        async with ctx.http.stream("GET", client.hub_model_url(ctx), headers=client.headers(ctx),
                                   deadline=ctx.deadline) as response:
            info = await client.read_json(response)
        if not isinstance(info, dict):
            raise CredentialsValidateFailedError(f"Model {ctx.model} not found.")
        card = info.get("cardData")
        card = card if isinstance(card, dict) else {}
        if "inference" in card and not card["inference"]:
            raise CredentialsValidateFailedError(f"Inference API has been turned off for this model {ctx.model}.")
        tag = str(info.get("pipeline_tag") or "")
        if tag not in valid:
            raise CredentialsValidateFailedError(f"Model {ctx.model} is not a valid task, must be one of {valid}.")
        return tag

    async def _check_endpoint_repository(self, ctx: CallContext) -> None:
        namespace = str(ctx.credentials.get("huggingface_namespace") or "").strip()
        if not namespace:
            raise CredentialsValidateFailedError("Huggingface Hub User Name / Organization Name must be provided.")
        async with ctx.http.stream("GET", client.endpoints_api_url(ctx, namespace), headers=client.headers(ctx),
                                   deadline=ctx.deadline) as response:
            if response.status_code != 200:
                raise CredentialsValidateFailedError("User Name or Organization Name is invalid.")
            listed = client.loads(await response.aread())
        wanted = client.endpoint_url(ctx)
        repository = ""
        for item in (listed.get("items") if isinstance(listed, dict) else None) or ():
            status = item.get("status") if isinstance(item, dict) else None
            if isinstance(status, dict) and str(status.get("url") or "").rstrip("/") == wanted:
                model = item.get("model") if isinstance(item.get("model"), dict) else {}
                repository = str(model.get("repository") or "")
                break
        if repository != ctx.model:
            raise CredentialsValidateFailedError(
                f"Model Name {ctx.model} is invalid. Please check it on the inference endpoints console.")
