"""Triton Inference Server through the KServe v2 generate extension (``/generate``, ``/generate_stream``)."""
