"""Cohere's native v2 API (``/v2/chat``, ``/v2/embed``, ``/v2/rerank``)."""
