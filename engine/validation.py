"""Structural checks of LLM requests that the provider would otherwise reject late.

Each failure names the exact field (``messages[3].content[0]``, ``tools[1].parameters``).
The checks are linear in the request and allocate nothing on success.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import FieldViolation, InvokeBadRequestError
from .messages import PartKind, PromptMessage, Role, Tool

_TOOL_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_JSON_TYPES = {"object", "array", "string", "number", "integer", "boolean", "null"}


def _fail(violations: list[FieldViolation]) -> None:
    if violations:
        raise InvokeBadRequestError(
            f"{violations[0].field}: {violations[0].description}", field_violations=violations
        )


def check_messages(messages: list[PromptMessage], max_bytes: int, max_messages: int) -> None:
    violations: list[FieldViolation] = []
    if not messages:
        _fail([FieldViolation("messages", "at least one message is required")])
    if len(messages) > max_messages:
        _fail([FieldViolation("messages", f"at most {max_messages} messages are accepted")])
    for i, message in enumerate(messages):
        size = 0
        for part in message.content:
            size += len(part.text) if part.kind is PartKind.TEXT else len(part.data) + len(part.url)
        if size > max_bytes:
            violations.append(FieldViolation(
                f"messages[{i}].content", f"message is {size} bytes; the limit is {max_bytes}"
            ))
        if message.role is Role.TOOL and not message.tool_call_id:
            violations.append(FieldViolation(f"messages[{i}].tool_call_id", "tool messages need tool_call_id"))
        for j, part in enumerate(message.content):
            if part.kind is not PartKind.TEXT and not (part.data or part.url):
                violations.append(FieldViolation(f"messages[{i}].content[{j}]", "media part has no data or url"))
    _fail(violations)


def check_stop(stop: list[str], max_count: int, max_chars: int) -> None:
    if len(stop) > max_count:
        _fail([FieldViolation("stop", f"at most {max_count} stop sequences are accepted")])
    _fail([
        FieldViolation(f"stop[{i}]", f"stop sequence is {len(s)} characters; the limit is {max_chars}")
        for i, s in enumerate(stop) if len(s) > max_chars
    ])


def _check_schema(schema: Any, path: str, violations: list[FieldViolation], depth: int = 0) -> None:
    if depth > 32:
        violations.append(FieldViolation(path, "schema nests too deeply"))
        return
    if not isinstance(schema, dict):
        violations.append(FieldViolation(path, "a JSON schema must be an object"))
        return
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind] if kind is not None else []
    for k in kinds:
        if k not in _JSON_TYPES:
            violations.append(FieldViolation(f"{path}.type", f"unknown JSON schema type {k!r}"))
    props = schema.get("properties")
    if props is not None:
        if not isinstance(props, dict):
            violations.append(FieldViolation(f"{path}.properties", "must be an object"))
        else:
            for name, sub in props.items():
                _check_schema(sub, f"{path}.properties.{name}", violations, depth + 1)
    required = schema.get("required")
    if required is not None:
        if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
            violations.append(FieldViolation(f"{path}.required", "must be a list of property names"))
        elif isinstance(props, dict):
            missing = [r for r in required if r not in props]
            if missing:
                violations.append(FieldViolation(f"{path}.required", f"names undefined properties {missing}"))
    items = schema.get("items")
    if items is not None and not isinstance(items, (dict, bool)):
        violations.append(FieldViolation(f"{path}.items", "must be a schema"))
    elif isinstance(items, dict):
        _check_schema(items, f"{path}.items", violations, depth + 1)


def check_tools(tools: list[Tool], max_tools: int) -> None:
    violations: list[FieldViolation] = []
    if len(tools) > max_tools:
        _fail([FieldViolation("tools", f"at most {max_tools} tools are accepted")])
    seen: set[str] = set()
    for i, tool in enumerate(tools):
        if not _TOOL_NAME.match(tool.name or ""):
            violations.append(FieldViolation(
                f"tools[{i}].name", "must be 1-64 characters of letters, digits, '_', '-', '.', ':'"
            ))
        elif tool.name in seen:
            violations.append(FieldViolation(f"tools[{i}].name", f"duplicate tool name {tool.name!r}"))
        seen.add(tool.name)
        params = tool.parameters
        if params:
            if params.get("type", "object") != "object":
                violations.append(FieldViolation(f"tools[{i}].parameters.type", "tool parameters must be an object schema"))
            _check_schema(params, f"tools[{i}].parameters", violations)
    _fail(violations)
