"""Loads provider folders laid out as Dify's (v0.15 in-tree layout)::

    <root>/_position.yaml                 provider order (optional)
    <root>/<provider>/<provider>.yaml     ProviderEntity (+ our `runtime:` block)
    <root>/<provider>/<type_folder>/*.yaml      predefined models (files starting '_' skipped)
    <root>/<provider>/<type_folder>/_position.yaml  model order (optional)

Parameter-rule templates are merged into predefined rules as Dify does. Any error names
the file it came from. Loading happens once at start-up.

The built-in folders load strictly (a mistake there is ours and stops the server). Folders an
operator adds through ``provider_dirs`` go through :mod:`engine.plugins`, which also reads Dify's
plugin packaging and passes an ``on_error`` callback here so one bad model file is reported and
skipped instead of stopping the load. Enum values Dify accepts but this runtime does not serve
(a model feature such as ``polling``) are dropped with a warning through ``on_warning``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .entities import AIModelEntity, FetchFrom, ModelType, ProviderEntity
from .templates import merge_predefined_rule


class SchemaLoadError(ValueError):
    pass


# (file, reason) -> None
Report = Callable[[Path, str], None]

# Values Dify (its plugin SDK or daemon) accepts that this runtime does not serve: a file using
# them still loads, without them, and the loading report says so.
DIFY_ONLY_FEATURES = frozenset({"polling"})
DIFY_ONLY_MODEL_TYPES = frozenset({"text2img", "multimodal-embedding", "multimodal-rerank"})


def drop_dify_only(raw: dict[str, Any], key: str, allowed: frozenset[str], path: Path,
                   on_warning: Report | None) -> dict[str, Any]:
    """``raw`` without the values of list ``key`` in ``allowed`` (each one reported)."""
    values = raw.get(key)
    if not isinstance(values, list) or not any(isinstance(v, str) and v in allowed for v in values):
        return raw
    for v in values:
        if isinstance(v, str) and v in allowed and on_warning is not None:
            on_warning(path, f"{key}: '{v}' is a Dify value this runtime does not serve; ignored")
    return {**raw, key: [v for v in values if not (isinstance(v, str) and v in allowed)]}


@dataclass(slots=True)
class ProviderDefinition:
    entity: ProviderEntity
    folder: Path
    # model_type -> ordered predefined models, and an index by name
    models: dict[ModelType, list[AIModelEntity]] = field(default_factory=dict)
    index: dict[tuple[ModelType, str], AIModelEntity] = field(default_factory=dict)

    def predefined(self, model_type: ModelType, model: str) -> AIModelEntity | None:
        return self.index.get((model_type, model))


# libyaml's parser when PyYAML was built with it: the same safe subset, ~10x faster (the 347
# catalog files took 2.1 s of every start with the pure-Python one).
_LOADER: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(path: Path) -> object:
    try:
        with path.open("rb") as fh:
            return yaml.load(fh, Loader=_LOADER)  # a safe loader, C or Python
    except yaml.YAMLError as exc:
        raise SchemaLoadError(f"{path}: invalid YAML: {exc}") from None


def position_map(path: Path) -> dict[str, int]:
    if not path.exists():
        return {}
    names = read_yaml(path) or []
    if not isinstance(names, list):
        raise SchemaLoadError(f"{path}: expected a list of names")
    return {str(n).strip(): i for i, n in enumerate(n for n in names if n and str(n).strip())}


def load_model_file(path: Path, model_type: ModelType, on_warning: Report | None = None) -> AIModelEntity:
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise SchemaLoadError(f"{path}: expected a mapping")
    raw = drop_dify_only(dict(raw), "features", DIFY_ONLY_FEATURES, path, on_warning)
    raw["parameter_rules"] = [merge_predefined_rule(dict(r)) for r in raw.get("parameter_rules") or []]
    raw["fetch_from"] = FetchFrom.PREDEFINED_MODEL.value  # Dify forces this for YAML models
    raw.setdefault("model_type", model_type.value)
    try:
        return AIModelEntity.model_validate(raw)
    except ValueError as exc:  # pydantic ValidationError; its message names the field
        raise SchemaLoadError(f"{path}: {exc}") from None


def load_provider(folder: Path, on_error: Report | None = None,
                  on_warning: Report | None = None) -> ProviderDefinition:
    name = folder.name
    path = folder / f"{name}.yaml"
    raw = read_yaml(path)
    if isinstance(raw, dict):
        raw = drop_dify_only(raw, "supported_model_types", DIFY_ONLY_MODEL_TYPES, path, on_warning)
    try:
        entity = ProviderEntity.model_validate(raw)
    except ValueError as exc:  # pydantic ValidationError is a ValueError
        raise SchemaLoadError(f"{path}: {exc}") from None
    if entity.provider != name:
        raise SchemaLoadError(f"{path}: provider '{entity.provider}' must equal its folder name '{name}'")
    schema = ProviderDefinition(entity=entity, folder=folder)
    for model_type in entity.supported_model_types:
        type_dir = folder / model_type.folder
        files = [p for p in type_dir.glob("*.yaml") if not p.name.startswith("_")] if type_dir.is_dir() else []
        add_models(schema, model_type, files, position_map(type_dir / "_position.yaml"), on_error, on_warning)
    return schema


def add_models(schema: ProviderDefinition, model_type: ModelType, files: Iterable[Path],
               order: dict[str, int], on_error: Report | None = None, on_warning: Report | None = None) -> None:
    """Load ``files`` as ``model_type`` models of ``schema``, in ``order`` (unlisted ones last,
    alphabetically). Without ``on_error`` the first bad file raises; with it, each is reported."""
    models: list[AIModelEntity] = []
    for path in sorted(set(files)):
        try:
            models.append(load_model_file(path, model_type, on_warning))
        except SchemaLoadError as exc:
            if on_error is None:
                raise
            on_error(path, str(exc).removeprefix(f"{path}: "))
    # Stable sort: listed models first in listed order, then the rest alphabetically.
    models.sort(key=lambda m: order.get(m.model, len(order)))
    schema.models[model_type] = models
    for m in models:
        schema.index[(model_type, m.model)] = m


def load_providers(root: Path) -> dict[str, ProviderDefinition]:
    """All provider folders under ``root`` in ``_position.yaml`` order (unlisted ones last)."""
    order = position_map(root / "_position.yaml")
    found = [
        d for d in sorted(root.iterdir())
        if d.is_dir() and not d.name.startswith(("_", ".")) and (d / f"{d.name}.yaml").exists()
    ]
    found.sort(key=lambda d: order.get(d.name, len(order)))
    return {d.name: load_provider(d) for d in found}
