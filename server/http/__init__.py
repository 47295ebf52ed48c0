"""The OpenAI-compatible HTTP endpoint, served from the gRPC server's process and event loop.

Every route calls only :class:`providers.runtime.ModelRuntime` (validation, errors, usage and
cost stay on the one code path the gRPC services use). See ``app.py`` for the server and
routing, ``openai_errors.py`` for the status mapping.
"""
