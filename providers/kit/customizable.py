"""Schemas of customizable models, built from the caller's model form, written once.

A customizable model (an OpenAI-compatible server, Ollama, Triton, Hugging Face, Replicate, a
retrieval provider's own model) has no YAML: its schema is made from the credentials of Dify's
model form. What a protocol keeps is its own: which parameter rules it offers (names, labels,
defaults, ranges) and which form fields say what. Written here once:

- :func:`form_int` — a form value as an int ("4096", 4096.0, "" → the default), as Dify reads them;
- :func:`rule` — a parameter rule; with a ``template`` (``temperature``, ``max_tokens``, ...) its
  empty fields are filled from Dify's template (:func:`engine.templates.fill_customizable_rule`);
  labels and help texts are plain strings, ``(en_US, zh_Hans)`` pairs or :class:`I18nObject`;
- :func:`schema` / :func:`embedding_schema` — the customizable :class:`AIModelEntity`.
"""

from __future__ import annotations

from typing import Any

from engine.entities import (
    AIModelEntity,
    FetchFrom,
    I18nObject,
    ModelFeature,
    ModelType,
    ParameterRule,
    ParameterType,
)
from engine.templates import fill_customizable_rule

Text = str | tuple[str, str] | I18nObject  # plain, (en_US, zh_Hans), or a full object


def i18n(text: Text) -> I18nObject:
    if isinstance(text, I18nObject):
        return text
    if isinstance(text, tuple):
        return I18nObject(en_US=text[0], zh_Hans=text[1])
    return I18nObject.plain(text)


def form_int(value: Any, default: int, *, positive: bool = False) -> int:
    """A form value as an int; empty or unreadable (and with ``positive``, not above 0) → ``default``."""
    try:
        number = int(float(value)) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default
    return default if positive and number <= 0 else number


def rule(name: str, kind: ParameterType, label: Text | None = None, help_text: Text | None = None,
         template: str | None = None, **kw: Any) -> ParameterRule:
    """A parameter rule labelled ``label`` (default: its name), filled from ``template`` if any."""
    made = ParameterRule(name=name, type=kind, use_template=template, label=i18n(label or name),
                         help=i18n(help_text) if help_text else None, **kw)
    return fill_customizable_rule(made) if template else made


def schema(model: str, model_type: ModelType, properties: dict[str, Any], *,
           rules: list[ParameterRule] | None = None, features: list[ModelFeature] | None = None,
           label: I18nObject | None = None) -> AIModelEntity:
    """A customizable model's schema (label: the model name unless given)."""
    return AIModelEntity(
        model=model, label=label or I18nObject.plain(model), model_type=model_type, features=features,
        fetch_from=FetchFrom.CUSTOMIZABLE_MODEL, model_properties=properties, parameter_rules=rules or [],
    )


def embedding_schema(model: str, context_size: int, max_chunks: int = 1) -> AIModelEntity:
    """A customizable text-embedding model: its context size and inputs per request."""
    return schema(model, ModelType.TEXT_EMBEDDING, {"context_size": context_size, "max_chunks": max_chunks})
