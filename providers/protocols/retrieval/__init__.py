"""The retrieval adapter family: embedding and rerank specialists (Jina, Voyage, Mixedbread, Nomic).

Their APIs are OpenAI-like embeddings and Cohere-like rerank that differ only in field names
and response paths; :mod:`.dialect` reads those differences from the provider YAML's
``runtime:`` block, so one embeddings class and one rerank class serve every provider.
"""
