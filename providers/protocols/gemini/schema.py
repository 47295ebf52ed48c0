"""JSON Schema → the OpenAPI subset Gemini accepts (function parameters, responseSchema).

Gemini's ``Schema`` message is a fixed protobuf, so any key it does not define is a 400
("Invalid JSON payload received. Unknown name ..."), and it has no references at all. What
callers commonly send, and what happens to it here:

- ``$schema``, ``$id``, ``additionalProperties``, ``default``, ``examples``,
  ``exclusiveMinimum``/``exclusiveMaximum``, ``const`` on non-strings, ``not``,
  ``patternProperties``, ``unevaluatedProperties``, ``dependentRequired`` … : dropped;
- ``type: ["string", "null"]``: ``type: STRING`` plus ``nullable: true``; several non-null
  types become ``anyOf``;
- ``oneOf`` becomes ``anyOf``; ``allOf`` is merged into one object schema;
- ``const`` (a string) becomes a one-value ``enum``; enums of non-strings are dropped (Gemini
  enums are string-only);
- ``format``: kept only where Gemini defines it (``enum``/``date-time`` on strings,
  ``float``/``double`` on numbers, ``int32``/``int64`` on integers), e.g. ``uri`` is dropped;
- an object with no properties loses ``properties`` (Gemini rejects an empty map);
- ``$ref`` cannot be expressed: :class:`SchemaError` names where it was found.

Pure functions, no I/O.
"""

from __future__ import annotations

from typing import Any

_TYPES = {"string", "number", "integer", "boolean", "array", "object", "null"}
_COPY = (
    "description", "title", "pattern", "minimum", "maximum", "minLength", "maxLength",
    "minItems", "maxItems", "minProperties", "maxProperties",
)
_FORMATS = {
    "STRING": {"enum", "date-time"},
    "NUMBER": {"float", "double"},
    "INTEGER": {"int32", "int64"},
}
_MAX_DEPTH = 48


class SchemaError(ValueError):
    """A schema Gemini cannot represent; ``path`` is where (``properties.loc.$ref``)."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _merge_all_of(node: dict[str, Any], path: str) -> dict[str, Any]:
    """Fold ``allOf`` members into the node (properties and required are unioned)."""
    parts = node.get("allOf")
    if not isinstance(parts, list):
        raise SchemaError(_join(path, "allOf"), "must be a list of schemas")
    merged = {k: v for k, v in node.items() if k != "allOf"}
    for i, part in enumerate(parts):
        if not isinstance(part, dict):
            raise SchemaError(f"{_join(path, 'allOf')}[{i}]", "must be a schema object")
        if "$ref" in part:
            raise SchemaError(f"{_join(path, 'allOf')}[{i}].$ref", "$ref is not supported by Gemini; inline the schema")
        for key, value in part.items():
            if key == "properties" and isinstance(value, dict):
                merged.setdefault("properties", {})
                merged["properties"] = {**merged["properties"], **value}
            elif key == "required" and isinstance(value, list):
                merged["required"] = list(dict.fromkeys([*(merged.get("required") or []), *value]))
            else:
                merged.setdefault(key, value)
    return merged


def _types(node: dict[str, Any], path: str) -> tuple[list[str], bool]:
    raw = node.get("type")
    if raw is None:
        return [], False
    names = raw if isinstance(raw, list) else [raw]
    out: list[str] = []
    nullable = False
    for name in names:
        if not isinstance(name, str) or name.lower() not in _TYPES:
            raise SchemaError(_join(path, "type"), f"unknown type {name!r}")
        if name.lower() == "null":
            nullable = True
        else:
            out.append(name.upper())
    return out, nullable


def sanitize(node: Any, path: str = "", depth: int = 0) -> dict[str, Any]:
    """A Gemini ``Schema`` dict for the JSON schema ``node`` (raises :class:`SchemaError`)."""
    if depth > _MAX_DEPTH:
        raise SchemaError(path, "schema nests too deeply")
    if isinstance(node, bool) or node is None:
        return {}  # `true` / absent: any value; Gemini's nearest is an unconstrained schema
    if not isinstance(node, dict):
        raise SchemaError(path, "a schema must be an object")
    if "$ref" in node:
        raise SchemaError(_join(path, "$ref"), "$ref is not supported by Gemini; inline the referenced schema")
    if "allOf" in node:
        node = _merge_all_of(node, path)
    out: dict[str, Any] = {}
    types, nullable = _types(node, path)
    if node.get("nullable") is True:
        nullable = True
    if len(types) == 1:
        out["type"] = types[0]
    elif len(types) > 1:
        out["anyOf"] = [{"type": t} for t in types]
    for key in _COPY:
        value = node.get(key)
        if value is not None and not isinstance(value, (dict, list)):
            out[key] = value
    kind = out.get("type")
    enum = node.get("enum")
    if enum is None and isinstance(node.get("const"), str):
        enum = [node["const"]]
    if isinstance(enum, list) and enum and all(isinstance(v, str) for v in enum):
        out["enum"] = list(enum)
        if kind is None:
            out["type"] = kind = "STRING"
    fmt = node.get("format")
    if isinstance(fmt, str) and kind is not None and fmt in _FORMATS.get(kind, ()):
        out["format"] = fmt
    props = node.get("properties")
    if isinstance(props, dict) and props:
        out["properties"] = {
            str(name): sanitize(sub, _join(_join(path, "properties"), str(name)), depth + 1)
            for name, sub in props.items()
        }
        required = node.get("required")
        if isinstance(required, list):
            kept = [r for r in required if isinstance(r, str) and r in props]
            if kept:
                out["required"] = kept
        if kind is None:
            out["type"] = "OBJECT"
    items = node.get("items")
    if items is not None:
        if isinstance(items, list):  # tuple form: Gemini has one item schema
            items = items[0] if items else {}
        out["items"] = sanitize(items, _join(path, "items"), depth + 1)
        if kind is None:
            out["type"] = "ARRAY"
    variants = node.get("anyOf") or node.get("oneOf")
    if isinstance(variants, list) and variants:
        key = "anyOf" if "anyOf" in node else "oneOf"
        subs = []
        for i, sub in enumerate(variants):
            if isinstance(sub, dict) and sub.get("type") == "null" and len(sub) == 1:
                nullable = True
                continue
            subs.append(sanitize(sub, f"{_join(path, key)}[{i}]", depth + 1))
        if len(subs) == 1 and "type" not in out:
            out.update(subs[0])
        elif subs:
            out["anyOf"] = subs
    if nullable:
        out["nullable"] = True
    return out


def function_parameters(schema: dict[str, Any] | None) -> dict[str, Any] | None:
    """Parameters of a function declaration, or None for a function without parameters
    (Gemini rejects ``{"type": "OBJECT", "properties": {}}``: "should be non-empty")."""
    if not schema:
        return None
    out = sanitize(schema)
    if not out.get("properties"):
        return None
    out["type"] = "OBJECT"
    return out
