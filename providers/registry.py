"""Provider registry: loaded schemas plus one adapter instance per provider.

A provider YAML names its adapter family in ``runtime.adapter``. Families are listed here
once, by import path, and imported lazily the first time a provider needs them, so the
registry knows protocols, never individual providers: an OpenAI-compatible provider is a
YAML folder and nothing else.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from .base import ProviderAdapter
from .entities import ModelType
from .errors import NotFoundError
from .loader import ProviderSchema, load_providers

# adapter family -> "module:Class"
ADAPTER_FAMILIES: dict[str, str] = {
    "openai": "providers.wire.openai.provider:OpenAIProvider",
    "gemini": "providers.wire.gemini.provider:GeminiProvider",
    "anthropic": "providers.wire.anthropic.provider:AnthropicProvider",
    "cohere": "providers.wire.cohere.provider:CohereProvider",
    "ollama": "providers.wire.ollama.provider:OllamaProvider",
    "bedrock": "providers.wire.bedrock.provider:BedrockProvider",
    "retrieval": "providers.wire.retrieval.provider:RetrievalProvider",
    "vertex": "providers.wire.vertex.provider:VertexProvider",
    "triton": "providers.wire.triton.provider:TritonProvider",
    "tencent_asr": "providers.wire.tencent_asr.provider:TencentASRProvider",
    "replicate": "providers.wire.replicate.provider:ReplicateProvider",
    "huggingface": "providers.wire.huggingface.provider:HuggingFaceProvider",
}

BUILTIN_ROOT = Path(__file__).parent


class Registry:
    def __init__(self, roots: list[Path] | None = None) -> None:
        self.schemas: dict[str, ProviderSchema] = {}
        for root in roots or [BUILTIN_ROOT]:
            self.schemas.update(load_providers(root))
        self._adapters: dict[str, ProviderAdapter] = {}

    def schema(self, provider: str) -> ProviderSchema:
        schema = self.schemas.get(provider)
        if schema is None:
            raise NotFoundError(f"Unknown provider '{provider}'", provider=provider)
        return schema

    def adapter(self, provider: str) -> ProviderAdapter:
        adapter = self._adapters.get(provider)
        if adapter is None:
            schema = self.schema(provider)
            family = schema.entity.runtime.get("adapter")
            target = ADAPTER_FAMILIES.get(str(family))
            if target is None:
                raise NotFoundError(
                    f"Provider '{provider}' names no known adapter family ({family!r})", provider=provider
                )
            module_name, _, cls_name = target.partition(":")
            cls = getattr(importlib.import_module(module_name), cls_name)
            adapter = cls(schema.entity)
            adapter.predefined = schema.index
            base = schema.entity.runtime.get("base_models_from")
            if base:  # e.g. Azure deployments take the schema of an OpenAI base model
                adapter.base_models = self.schema(str(base)).index
            self._adapters[provider] = adapter
        return adapter

    def provider_names(self, model_type: ModelType | None = None) -> list[str]:
        return [
            name for name, s in self.schemas.items()
            if model_type is None or model_type in s.entity.supported_model_types
        ]
