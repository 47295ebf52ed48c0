"""The ``runtime:`` options of the Bedrock protocol (Converse, embeddings, rerank)."""

from __future__ import annotations

from providers.kit.options import HTTPOptions


class BedrockOptions(HTTPOptions):
    agent_base_url: str | None = None  # the Agent Runtime host (rerank), {region} and {domain} filled in
    agent_base_url_credential: str | None = None  # credential that overrides it
    signing_service: str | None = None  # SigV4 service name (default bedrock)
