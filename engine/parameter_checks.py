"""Combinations a provider rejects for one model, refused before the call with the field at fault.

Parameter rules (:mod:`.rules`) judge each parameter alone, and drop the ones a model has no rule
for. Reasoning models brought rules that span parameters and the request: Claude Opus 5 thinks
adaptively and takes no thinking budget, Claude 4.6 and later take no assistant prefill, Gemini 3
takes ``thinking_level`` where Gemini 2.5 takes a budget (and 2.5 Pro cannot turn thinking off),
gpt-5.1 takes ``temperature`` only at ``reasoning_effort: none``. A model YAML declares them as
``parameter_checks`` (:class:`engine.entities.ParameterCheck`); the runtime evaluates them after
the rules, so the caller gets INVALID_ARGUMENT naming ``model_parameters.<name>``,
``messages[i]`` or ``tool_choice`` with the YAML's advice, instead of the provider's 400 or a
parameter that silently vanishes.

Values compare by type as well as value (``false`` never matches ``0``); a condition on a
parameter the caller did not send sees its rule's default, which the YAML sets to the provider's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .adapter import LLMRequest
from .entities import AIModelEntity
from .errors import FieldViolation, InvokeBadRequestError
from .messages import PartKind, Role
from .rules import PerSchema

ASSISTANT_PREFILL = "assistant_prefill"  # the conversation ends with an assistant message
FORCED_TOOL_CHOICE = "forced_tool_choice"  # tool_choice "required" or a named function
_FORCING = ("required", "function")


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return bool(a == b)


def _among(value: Any, values: tuple[Any, ...]) -> bool:
    return any(_same(value, v) for v in values)


# One check, compiled: (reject, values or None, between or None, when, unless, message), where
# when/unless are ((parameter, allowed values, the rule's default), ...).
_Compiled = tuple[str, "tuple[Any, ...] | None", "tuple[float, float] | None",
                  "tuple[tuple[str, tuple[Any, ...], Any], ...]", "tuple[tuple[str, tuple[Any, ...], Any], ...]", str]


def _compile(schema: AIModelEntity) -> tuple[_Compiled, ...]:
    defaults = {r.name: r.default for r in schema.parameter_rules}

    def conditions(spec: dict[str, list[Any]]) -> tuple[tuple[str, tuple[Any, ...], Any], ...]:
        return tuple((name, tuple(values), defaults.get(name)) for name, values in spec.items())

    return tuple(
        (c.reject, tuple(c.values) if c.values is not None else None, c.between,
         conditions(c.when), conditions(c.unless), c.message)
        for c in schema.parameter_checks
    )


def _holds(when: tuple, unless: tuple, validated: Mapping[str, Any]) -> bool:
    for name, values, default in when:
        value = validated.get(name)
        if not _among(default if value is None else value, values):
            return False
    for name, values, default in unless:
        value = validated.get(name)
        if _among(default if value is None else value, values):
            return False
    return True


def _prefill(request: LLMRequest) -> str | None:
    for i in range(len(request.messages) - 1, -1, -1):
        message = request.messages[i]
        if message.role in (Role.SYSTEM, Role.DEVELOPER):
            continue
        prefill = message.role is Role.ASSISTANT and not message.tool_calls and any(
            p.text or p.kind is not PartKind.TEXT for p in message.content)  # an empty turn is no prefill
        return f"messages[{i}]" if prefill else None
    return None


def _parameter(name: str, values: tuple[Any, ...] | None, between: tuple[float, float] | None,
               raw: Mapping[str, Any], validated: Mapping[str, Any]) -> str | None:
    if raw.get(name) is None:
        return None  # not sent by the caller (a rule's default never trips a check)
    value = validated.get(name, raw[name])
    if values is not None and not _among(value, values):
        return None
    if between is not None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        if not between[0] <= value <= between[1]:
            return None
    return f"model_parameters.{name}"


def _offending(check: _Compiled, raw: Mapping[str, Any], validated: Mapping[str, Any],
               request: LLMRequest) -> str | None:
    """The field the check rejects in this request, or None when the request passes it."""
    reject, values, between = check[0], check[1], check[2]
    if reject == ASSISTANT_PREFILL:
        return _prefill(request)
    if reject == FORCED_TOOL_CHOICE:
        choice = request.tool_choice
        return "tool_choice" if request.tools and choice is not None and choice.mode in _FORCING else None
    return _parameter(reject, values, between, raw, validated)


_compiled: PerSchema[tuple[_Compiled, ...]] = PerSchema(_compile, lambda schema: schema.parameter_checks)


def check_request(schema: AIModelEntity, raw: Mapping[str, Any] | None, request: LLMRequest) -> None:
    """Raise one bad request naming every field the model's ``parameter_checks`` reject.

    ``raw``: the parameters as the caller sent them; ``request.parameters``: after the rules."""
    if not schema.parameter_checks:
        return
    raw = raw or {}
    validated = request.parameters
    violations: list[FieldViolation] = []
    for check in _compiled(schema):
        field = _offending(check, raw, validated, request)
        if field is None or not _holds(check[3], check[4], validated):
            continue
        if all(v.field != field for v in violations):
            violations.append(FieldViolation(field, check[5]))
    if violations:
        raise InvokeBadRequestError(
            " ".join(f"{v.field}: {v.description}" for v in violations), field_violations=violations
        )
