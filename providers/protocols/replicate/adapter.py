"""The Replicate adapter family: language and embedding models run as Replicate predictions.

Every model is customizable, as in Dify: the caller names ``{owner}/{name}`` and gives
``replicate_api_token`` and optionally ``model_version`` (empty: the model's latest version). The
schema is built from those credentials alone (:mod:`.transform`: Dify's mode rule, a fixed set of
LLM parameter rules mapped onto each model's own inputs at call time; embeddings with Dify's
``context_size: 4096``, ``max_chunks: 1``).

Credential checks are Dify's:

* there are no provider credentials (the models are customizable only);
* an LLM: the name has the ``{owner}/{name}`` form, the model (and the pinned version) exist for
  this token, and it is a text-generation model (its description says "language model" or its
  inputs include ``temperature``, ``top_p`` and ``top_k``); no prediction is run;
* an embedding model: the same lookups, then one real embedding of ``"Hello worlds!"``.
"""

from __future__ import annotations

from typing import Any

from engine.adapter import Adapter, CallContext
from engine.entities import AIModelEntity, ModelType, ProviderEntity
from engine.errors import CredentialsValidateFailedError, InvokeBadRequestError
from engine.options import ProtocolOptions

from . import client
from .chat import ReplicateChat
from .embeddings import ReplicateEmbeddings
from .options import ReplicateOptions
from .transform import embedding_schema, is_text_generation, llm_schema, text_input_key


class ReplicateAdapter(Adapter):
    options_model = ReplicateOptions

    def __init__(self, entity: ProviderEntity, options: ProtocolOptions | None = None) -> None:
        super().__init__(entity, options)
        types = set(entity.supported_model_types)
        self.llm = ReplicateChat() if ModelType.LLM in types else None
        self.text_embedding = ReplicateEmbeddings() if ModelType.TEXT_EMBEDDING in types else None

    def customizable_schema(
        self, model: str, model_type: ModelType, credentials: dict[str, Any]
    ) -> AIModelEntity | None:
        if model_type is ModelType.LLM:
            return llm_schema(model)
        if model_type is ModelType.TEXT_EMBEDDING:
            return embedding_schema(model)
        return None

    async def validate_provider_credentials(self, ctx: CallContext) -> None:
        raise CredentialsValidateFailedError("Replicate has no provider credentials; validate each model instead")

    async def validate_model_credentials(self, ctx: CallContext) -> None:
        if not client.token(ctx):
            raise CredentialsValidateFailedError("Replicate Access Token must be provided.")
        try:
            client.split_model(ctx.model)
        except InvokeBadRequestError:
            raise CredentialsValidateFailedError(
                "Replicate Model Name must be provided, format: {user_name}/{model_name}") from None
        info = await client.model_info(ctx, fresh=True)
        label = f"{ctx.model}:{client.version(ctx) or 'latest'}"
        if ctx.model_type is ModelType.LLM and self.llm is not None:
            if not is_text_generation(info):
                raise CredentialsValidateFailedError(f"Model {label} is not a Text Generation model.")
        elif ctx.model_type is ModelType.TEXT_EMBEDDING and self.text_embedding is not None:
            if not text_input_key(info):
                raise CredentialsValidateFailedError(f"Model {label} takes no text input, so it cannot embed text.")
            await self.text_embedding.embed(ctx, ["Hello worlds!"], "document", None, "")
        else:
            raise CredentialsValidateFailedError(f"Replicate does not offer {ctx.model_type.value} models here")
