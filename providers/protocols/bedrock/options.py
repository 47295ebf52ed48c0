"""The ``runtime:`` options of the Bedrock protocol (Converse, embeddings, rerank), with AWS's defaults.

Host templates take ``{region}`` (the caller's ``aws_region``) and ``{domain}``
(``amazonaws.com``, or ``amazonaws.com.cn`` for ``cn-*`` regions).
"""

from __future__ import annotations

from providers.kit.options import HTTPOptions


class BedrockOptions(HTTPOptions):
    base_url: str = "https://bedrock-runtime.{region}.{domain}"  # the runtime host (Converse, InvokeModel)
    base_url_credential: str = "bedrock_endpoint_url"  # credential that overrides it
    agent_base_url: str = "https://bedrock-agent-runtime.{region}.{domain}"  # the Agent Runtime host (rerank)
    agent_base_url_credential: str = "bedrock_agent_endpoint_url"  # credential that overrides that
    signing_service: str = "bedrock"  # SigV4 service name, for both hosts
    validate_model: str = "amazon.nova-micro-v1:0"  # a provider-credential check pings it
