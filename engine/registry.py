"""Provider registry: loaded provider definitions plus one adapter instance per provider.

A provider YAML names its wire protocol in ``runtime.protocol``. The registry is given the
table of protocols (name -> ``"module:Class"`` of the adapter) by whoever builds it — the
providers wing publishes it as :data:`providers.PROTOCOLS` — and imports a protocol lazily
the first time a provider needs it. So the engine knows no protocol and no provider: an
OpenAI-compatible provider is a YAML folder and nothing else.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path

from .adapter import Adapter
from .entities import ModelType
from .errors import NotFoundError
from .loader import ProviderDefinition, load_providers


def import_target(target: str) -> type:
    """Import ``"module:Class"`` (a protocol's adapter class)."""
    module_name, _, cls_name = target.partition(":")
    return getattr(importlib.import_module(module_name), cls_name)  # type: ignore[no-any-return]


class Registry:
    def __init__(self, roots: list[Path], protocols: Mapping[str, str]) -> None:
        self.definitions: dict[str, ProviderDefinition] = {}
        for root in roots:
            self.definitions.update(load_providers(root))
        self.protocols = dict(protocols)
        self._adapters: dict[str, Adapter] = {}

    def definition(self, provider: str) -> ProviderDefinition:
        found = self.definitions.get(provider)
        if found is None:
            raise NotFoundError(f"Unknown provider '{provider}'", provider=provider)
        return found

    def adapter_class(self, protocol: str) -> type[Adapter]:
        target = self.protocols.get(protocol)
        if target is None:
            raise KeyError(protocol)
        return import_target(target)

    def adapter(self, provider: str) -> Adapter:
        adapter = self._adapters.get(provider)
        if adapter is None:
            definition = self.definition(provider)
            protocol = definition.entity.runtime.get("protocol")
            if str(protocol) not in self.protocols:
                raise NotFoundError(
                    f"Provider '{provider}' names no known protocol ({protocol!r})", provider=provider
                )
            adapter = self.adapter_class(str(protocol))(definition.entity)
            adapter.predefined = definition.index
            base = definition.entity.runtime.get("base_models_from")
            if base:  # e.g. Azure deployments take the schema of an OpenAI base model
                adapter.base_models = self.definition(str(base)).index
            self._adapters[provider] = adapter
        return adapter

    def provider_names(self, model_type: ModelType | None = None) -> list[str]:
        return [
            name for name, d in self.definitions.items()
            if model_type is None or model_type in d.entity.supported_model_types
        ]
