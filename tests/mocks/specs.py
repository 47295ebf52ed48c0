"""Checks of wire bodies against the providers' official definitions, used by the mocks and tests.

- OpenAI: the official OpenAPI document (OpenAPI 3.1, whose schemas are JSON Schema 2020-12):
  :func:`openai_problems` validates an object against one of its ``components/schemas`` (e.g.
  ``CreateResponse``, ``Response``, the stream events). The schemas used, with all they reference,
  are extracted into ``openai_schemas.json`` here by ``scripts/extract_openai_schemas.py`` (CI's
  clean checkout has no reference folder beside it); a test checks the extract is current.
- Anthropic: the official ``anthropic`` SDK's types. Request bodies are checked against its
  TypedDicts (``MessageCreateParamsStreaming`` / ``NonStreaming``) by a structural walk —
  pydantic validates ``Iterable`` fields lazily and ignores unknown keys, so it would let a bad
  block through — with required keys, unknown keys and literal tags all enforced; responses and
  stream events are validated by the SDK's pydantic models and must leave no unknown field.
"""

from __future__ import annotations

import collections.abc as cabc
import json
import types
import typing
from functools import lru_cache
from pathlib import Path
from typing import Any

from typing_extensions import is_typeddict

SCHEMAS = Path(__file__).resolve().parent / "openai_schemas.json"


# ---- OpenAI ------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _components() -> dict[str, Any]:
    return {"schemas": json.loads(SCHEMAS.read_text())["schemas"]}


@lru_cache(maxsize=32)
def _validator(name: str) -> Any:
    from jsonschema import Draft202012Validator

    return Draft202012Validator({"$ref": f"#/components/schemas/{name}", "components": _components()})


def openai_problems(obj: Any, schema: str) -> list[str]:
    """Violations of ``obj`` against ``#/components/schemas/<schema>`` (empty: valid)."""
    return [f"{'/'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message[:300]}"
            for e in _validator(schema).iter_errors(obj)]


# ---- Anthropic ---------------------------------------------------------------------------------


def _hints(td: Any) -> dict[str, Any]:
    return typing.get_type_hints(td, include_extras=True)


def _strip(tp: Any) -> Any:
    while typing.get_origin(tp) in (typing.Required, typing.NotRequired, typing.Annotated):
        tp = typing.get_args(tp)[0]
    return tp


def _check(value: Any, tp: Any, path: str) -> list[str]:
    tp = _strip(tp)
    if tp in (Any, object):
        return []
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        failures = [_check(value, o, path) for o in options]
        if any(not f for f in failures):
            return []
        tagged = [f for f, o in zip(failures, options, strict=True) if _tag_matches(value, o)]
        # the option of the right shape says most: not one that failed on the value's kind itself
        shaped = [f for f in failures if not all(x.startswith(f"{path}: ") for x in f)]
        return tagged[0] if tagged else min(shaped or failures, key=len)
    if origin is typing.Literal:
        return [] if value in typing.get_args(tp) else [f"{path}: {value!r} not in {typing.get_args(tp)}"]
    if is_typeddict(tp):
        if not isinstance(value, dict):
            return [f"{path}: expected an object for {tp.__name__}"]
        hints = _hints(tp)
        problems = [f"{path}.{k}: unknown field for {tp.__name__}" for k in value if k not in hints]
        required = [k for k, h in hints.items() if typing.get_origin(h) is typing.Required
                    or (k in tp.__required_keys__ and typing.get_origin(h) is not typing.NotRequired)]
        problems += [f"{path}.{k}: required by {tp.__name__}" for k in required if k not in value]
        for key, item in value.items():
            if key in hints:
                problems += _check(item, hints[key], f"{path}.{key}")
        return problems
    if origin in (list, cabc.Iterable, cabc.Sequence, typing.List):  # noqa: UP006
        if not isinstance(value, list):
            return [f"{path}: expected a list"]
        (inner,) = typing.get_args(tp) or (Any,)
        return [p for i, v in enumerate(value) for p in _check(v, inner, f"{path}[{i}]")]
    if origin in (dict, cabc.Mapping, typing.Dict):  # noqa: UP006
        return [] if isinstance(value, dict) else [f"{path}: expected an object"]
    if tp is str:
        return [] if isinstance(value, str) else [f"{path}: expected a string"]
    if tp is bool:
        return [] if isinstance(value, bool) else [f"{path}: expected a boolean"]
    if tp is int:
        return [] if isinstance(value, int) and not isinstance(value, bool) else [f"{path}: expected an integer"]
    if tp is float:
        return [] if isinstance(value, int | float) and not isinstance(value, bool) else [f"{path}: expected a number"]
    if tp is type(None):
        return [] if value is None else [f"{path}: expected null"]
    from pydantic import BaseModel

    if isinstance(tp, type) and issubclass(tp, BaseModel):  # SDK objects passed back: never wire JSON
        return [f"{path}: not a wire value"]
    return []  # file inputs and other SDK-side conveniences


def _tag_matches(value: Any, tp: Any) -> bool:
    tp = _strip(tp)
    if not (is_typeddict(tp) and isinstance(value, dict) and "type" in value):
        return False
    tag = _strip(_hints(tp).get("type"))
    return typing.get_origin(tag) is typing.Literal and value["type"] in typing.get_args(tag)


def anthropic_request_problems(body: dict[str, Any]) -> list[str]:
    """Violations of a Messages request body against the SDK's create-params TypedDict."""
    from anthropic.types import message_create_params as params

    td = params.MessageCreateParamsStreaming if body.get("stream") else params.MessageCreateParamsNonStreaming
    # Sampling parameters left the SDK's types in 2.x, but the API still takes them for the models
    # that have them (the models' YAML rules decide): the rest of the body is checked.
    return _check({k: v for k, v in body.items() if k not in _SAMPLING}, td, "body")


_SAMPLING = ("temperature", "top_p", "top_k")


def _extras(model: Any, path: str) -> list[str]:
    from pydantic import BaseModel

    if isinstance(model, list):
        return [p for i, m in enumerate(model) for p in _extras(m, f"{path}[{i}]")]
    if not isinstance(model, BaseModel):
        return []
    out = [f"{path}.{k}: unknown to the SDK" for k in (model.model_extra or {})]
    for name in type(model).model_fields:
        out += _extras(getattr(model, name), f"{path}.{name}")
    return out


def anthropic_message_problems(message: dict[str, Any]) -> list[str]:
    from anthropic.types import Message

    return _extras(Message.model_validate(message), "message")


def anthropic_event_problems(event: dict[str, Any]) -> list[str]:
    from anthropic.types import RawMessageStreamEvent
    from pydantic import TypeAdapter

    return _extras(TypeAdapter(RawMessageStreamEvent).validate_python(event), event.get("type", "event"))
