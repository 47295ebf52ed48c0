"""Ollama's native API (``/api/chat``, ``/api/embed``, ``/api/tags``, ``/api/show``)."""
