"""The providers wing: built-in provider definitions, the protocol adapters, and their shared kit.

- ``definitions/<name>/`` — one folder per provider, laid out as Dify's (YAML only, no code);
- ``protocols/<name>/`` — one package per wire protocol; each imports only :mod:`providers.kit`
  and the engine (declared composition, such as Vertex serving Gemini and Anthropic, aside);
- ``kit/`` — the plumbing every protocol shares (HTTP/JSON helpers, the stream driver, tool-call
  assembly, embedding batching, rerank shaping, audio helpers, customizable-model rules).

:data:`PROTOCOLS` is the one table of protocol names a provider YAML may give in
``runtime.protocol``; the engine's registry receives it and imports a protocol on first use.
"""

from __future__ import annotations

from pathlib import Path

from engine.plugins import LoadOptions
from engine.registry import Registry

DEFINITIONS = Path(__file__).parent / "definitions"

# protocol name -> its adapter class, "module:Class"
PROTOCOLS: dict[str, str] = {
    "openai": "providers.protocols.openai.adapter:OpenAIAdapter",
    "gemini": "providers.protocols.gemini.adapter:GeminiAdapter",
    "anthropic": "providers.protocols.anthropic.adapter:AnthropicAdapter",
    "cohere": "providers.protocols.cohere.adapter:CohereAdapter",
    "ollama": "providers.protocols.ollama.adapter:OllamaAdapter",
    "bedrock": "providers.protocols.bedrock.adapter:BedrockAdapter",
    "retrieval": "providers.protocols.retrieval.adapter:RetrievalAdapter",
    "vertex": "providers.protocols.vertex.adapter:VertexAdapter",
    "triton": "providers.protocols.triton.adapter:TritonAdapter",
    "tencent_asr": "providers.protocols.tencent_asr.adapter:TencentASRAdapter",
    "replicate": "providers.protocols.replicate.adapter:ReplicateAdapter",
    "huggingface": "providers.protocols.huggingface.adapter:HuggingFaceAdapter",
    "dashscope": "providers.protocols.dashscope.adapter:DashScopeAdapter",
}


def builtin_registry(extra_roots: list[Path] | None = None, options: LoadOptions | None = None) -> Registry:
    """The registry over the built-in definitions (then ``extra_roots``) and :data:`PROTOCOLS`."""
    return Registry([DEFINITIONS, *(extra_roots or [])], PROTOCOLS, options)
