"""Loads provider folders laid out as Dify's (v0.15 in-tree layout)::

    <root>/_position.yaml                 provider order (optional)
    <root>/<provider>/<provider>.yaml     ProviderEntity (+ our `runtime:` block)
    <root>/<provider>/<type_folder>/*.yaml      predefined models (files starting '_' skipped)
    <root>/<provider>/<type_folder>/_position.yaml  model order (optional)

Parameter-rule templates are merged into predefined rules as Dify does. Any error names
the file it came from. Loading happens once at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .entities import AIModelEntity, FetchFrom, ModelType, ProviderEntity
from .templates import merge_predefined_rule


class SchemaLoadError(ValueError):
    pass


@dataclass(slots=True)
class ProviderDefinition:
    entity: ProviderEntity
    folder: Path
    # model_type -> ordered predefined models, and an index by name
    models: dict[ModelType, list[AIModelEntity]] = field(default_factory=dict)
    index: dict[tuple[ModelType, str], AIModelEntity] = field(default_factory=dict)

    def predefined(self, model_type: ModelType, model: str) -> AIModelEntity | None:
        return self.index.get((model_type, model))


def _read_yaml(path: Path) -> object:
    try:
        with path.open("rb") as fh:
            return yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        raise SchemaLoadError(f"{path}: invalid YAML: {exc}") from None


def _position(path: Path) -> dict[str, int]:
    if not path.exists():
        return {}
    names = _read_yaml(path) or []
    if not isinstance(names, list):
        raise SchemaLoadError(f"{path}: expected a list of names")
    return {str(n).strip(): i for i, n in enumerate(n for n in names if n and str(n).strip())}


def load_model_file(path: Path, model_type: ModelType) -> AIModelEntity:
    raw = _read_yaml(path)
    if not isinstance(raw, dict):
        raise SchemaLoadError(f"{path}: expected a mapping")
    raw = dict(raw)
    raw["parameter_rules"] = [merge_predefined_rule(dict(r)) for r in raw.get("parameter_rules") or []]
    raw["fetch_from"] = FetchFrom.PREDEFINED_MODEL.value  # Dify forces this for YAML models
    raw.setdefault("model_type", model_type.value)
    try:
        return AIModelEntity.model_validate(raw)
    except ValueError as exc:  # pydantic ValidationError; its message names the field
        raise SchemaLoadError(f"{path}: {exc}") from None


def load_provider(folder: Path) -> ProviderDefinition:
    name = folder.name
    path = folder / f"{name}.yaml"
    raw = _read_yaml(path)
    try:
        entity = ProviderEntity.model_validate(raw)
    except ValueError as exc:  # pydantic ValidationError is a ValueError
        raise SchemaLoadError(f"{path}: {exc}") from None
    if entity.provider != name:
        raise SchemaLoadError(f"{path}: provider '{entity.provider}' must equal its folder name '{name}'")
    schema = ProviderDefinition(entity=entity, folder=folder)
    for model_type in entity.supported_model_types:
        type_dir = folder / model_type.folder
        if not type_dir.is_dir():
            schema.models[model_type] = []
            continue
        order = _position(type_dir / "_position.yaml")
        files = [p for p in type_dir.glob("*.yaml") if not p.name.startswith("_")]
        models = [load_model_file(p, model_type) for p in sorted(files)]
        # Stable sort: listed models first in listed order, then the rest alphabetically.
        models.sort(key=lambda m: order.get(m.model, len(order)))
        schema.models[model_type] = models
        for m in models:
            schema.index[(model_type, m.model)] = m
    return schema


def load_providers(root: Path) -> dict[str, ProviderDefinition]:
    """All provider folders under ``root`` in ``_position.yaml`` order (unlisted ones last)."""
    order = _position(root / "_position.yaml")
    found = [
        d for d in sorted(root.iterdir())
        if d.is_dir() and not d.name.startswith(("_", ".")) and (d / f"{d.name}.yaml").exists()
    ]
    found.sort(key=lambda d: order.get(d.name, len(order)))
    return {d.name: load_provider(d) for d in found}
