"""Replicate: language and embedding models run as predictions (create, wait/poll, SSE stream, cancel)."""
