"""The ``runtime:`` options of the Cohere v2 protocol."""

from __future__ import annotations

from providers.kit.options import HTTPOptions


class CohereOptions(HTTPOptions):
    customizable_base: dict[str, str] | None = None  # {model type: predefined model} a custom model copies
