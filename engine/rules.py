"""Model-parameter validation: Dify's ``_validate_and_filter_model_parameters``, precompiled.

Semantics (v0.15.3 ``large_language_model.py``), for each rule in schema order:

1. ``value = params.get(rule.name)``; if None and ``rule.use_template`` is a *key* of params,
   take ``params[rule.use_template]`` (even when that value is None, which then fails the type
   check, as in Dify).
2. Still missing: required → ``rule.default`` if not None (stored unchecked), else
   "is required."; not required → skipped. Defaults of optional rules are **not** applied.
3. Type checks without conversion: ``int`` (a bool passes: Python bool is an int), ``float``
   (int or float; bool passes too), precision (0 → must be integral; n → ``v == round(v, n)``),
   inclusive min/max, ``boolean`` (must be bool), ``string``/``text`` (must be str, options).
4. Only parameters named by a rule are returned, under ``rule.name`` (the vendor key).

Deliberate differences from Dify, all caused by the transport:

* google.protobuf.Struct carries every number as a double, so a JSON ``1`` arrives as ``1.0``.
  An ``int`` rule accepts a float with an integral value and converts it to ``int``; this is the
  only conversion. ``1.5`` is still rejected with "should be int.".
* NaN and ±Infinity (possible in a binary Struct, never in JSON) are rejected for ``float``
  rules with "should be float." (Dify would pass NaN through, or crash in ``int(inf)``).
* All violations are collected into one ``InvokeBadRequestError`` instead of stopping at the
  first; each carries Dify's message text.
* The token limit has one name per vendor (``max_tokens``, ``max_completion_tokens``,
  ``max_output_tokens``, ``max_tokens_to_sample``). A rule named by, or templated on, one of
  them also takes the others when neither its name nor its template was sent, so a caller's
  limit reaches the model's own parameter instead of being dropped (errors name the key sent).
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from engine.entities import AIModelEntity, ParameterRule, ParameterType
from engine.errors import FieldViolation, InvokeBadRequestError

T = TypeVar("T")
_FIELD_PREFIX = "model_parameters."
TOKEN_LIMIT_ALIASES = ("max_tokens", "max_completion_tokens", "max_output_tokens", "max_tokens_to_sample")


class _Bad(str):
    """A precomputed failure message; ``type(x) is _Bad`` tells it apart from a valid value."""

    __slots__ = ()


_Check = Callable[[Any], Any]  # returns the (possibly converted) value, or a _Bad message


def _msg(name: str, text: str) -> _Bad:
    return _Bad(f"Model Parameter {name} {text}")


def _range_msgs(rule: ParameterRule) -> tuple[_Bad, _Bad]:
    # Dify formats rule.min/rule.max as stored (floats after YAML parsing: "1.0", "2048.0").
    return (
        _msg(rule.name, f"should be greater than or equal to {rule.min}."),
        _msg(rule.name, f"should be less than or equal to {rule.max}."),
    )


def _int_check(rule: ParameterRule) -> _Check:
    lo, hi = rule.min, rule.max
    bad_type = _msg(rule.name, "should be int.")
    bad_lo, bad_hi = _range_msgs(rule)

    def check(v: Any) -> Any:
        if isinstance(v, float):
            # The one deliberate conversion: Struct numbers are doubles (see module doc).
            if not v.is_integer():
                return bad_type
            v = int(v)
        elif not isinstance(v, int):  # bool passes, as in Dify
            return bad_type
        if lo is not None and v < lo:
            return bad_lo
        if hi is not None and v > hi:
            return bad_hi
        return v

    return check


def _float_check(rule: ParameterRule) -> _Check:
    lo, hi, precision = rule.min, rule.max, rule.precision
    bad_type = _msg(rule.name, "should be float.")
    bad_int = _msg(rule.name, "should be int.")
    bad_round = _msg(rule.name, f"should be round to {precision} decimal places.")
    bad_lo, bad_hi = _range_msgs(rule)

    def check(v: Any) -> Any:
        # int and bool are accepted (bool is an int subclass); Dify does the same.
        if not isinstance(v, (float, int)):
            return bad_type
        if isinstance(v, float) and not math.isfinite(v):
            return bad_type
        if precision is not None:
            if precision == 0:
                if v != int(v):
                    return bad_int
            elif v != round(v, precision):
                return bad_round
        if lo is not None and v < lo:
            return bad_lo
        if hi is not None and v > hi:
            return bad_hi
        return v

    return check


def _bool_check(rule: ParameterRule) -> _Check:
    bad_type = _msg(rule.name, "should be bool.")

    def check(v: Any) -> Any:
        return v if isinstance(v, bool) else bad_type

    return check


def _str_check(rule: ParameterRule, type_text: str) -> _Check:
    bad_type = _msg(rule.name, f"should be {type_text}.")
    options = frozenset(rule.options)
    # Dify prints the list repr: "should be one of ['JSON', 'XML']."
    bad_option = _msg(rule.name, f"should be one of {rule.options}.")

    if not options:

        def check(v: Any) -> Any:
            return v if isinstance(v, str) else bad_type

        return check

    def check_options(v: Any) -> Any:
        if not isinstance(v, str):
            return bad_type
        return v if v in options else bad_option

    return check_options


def _unsupported_check(rule: ParameterRule) -> _Check:
    bad = _msg(rule.name, f"type {rule.type} is not supported.")
    return lambda v: bad


def _compile(rule: ParameterRule) -> _Check:
    kind = rule.type
    if kind is ParameterType.INT:
        return _int_check(rule)
    if kind is ParameterType.FLOAT:
        return _float_check(rule)
    if kind is ParameterType.BOOLEAN:
        return _bool_check(rule)
    if kind is ParameterType.STRING:
        return _str_check(rule, "string")
    if kind is ParameterType.TEXT:
        # v0.15 says "should be text." and checks options; the 1.x SDK does neither.
        return _str_check(rule, "text")
    return _unsupported_check(rule)


class ParameterValidator:
    """Validates and filters a parameter dict against one model's rules.

    Built once per rule list (all messages and checks precomputed); calling it is a single
    pass over the rules. Instances are immutable and thread-safe.
    """

    __slots__ = ("_limits", "_rules")

    def __init__(self, rules: list[ParameterRule]) -> None:
        compiled = []
        # (rule name, the token-limit names it also takes in order) for rules of the token limit
        self._limits: tuple[tuple[str, tuple[str, ...], int], ...] = ()
        for rule in rules:
            alias = rule.use_template or None
            compiled.append(
                (
                    rule.name,
                    alias,
                    rule.required,
                    rule.default,
                    _compile(rule),
                    _FIELD_PREFIX + rule.name,
                    _FIELD_PREFIX + alias if alias else "",
                    f"Model Parameter {rule.name} is required.",
                )
            )
            if rule.name in TOKEN_LIMIT_ALIASES or alias in TOKEN_LIMIT_ALIASES:
                own = (rule.name, alias) if alias else (rule.name,)
                others = tuple(a for a in TOKEN_LIMIT_ALIASES if a not in own)
                self._limits += ((rule.name, own + others, len(own)),)
        self._rules: tuple[tuple[Any, ...], ...] = tuple(compiled)

    def _token_limit(self, params: Mapping[str, Any]) -> dict[str, tuple[str, Any]]:
        """{rule name: (alias sent, value)} for token-limit rules whose own name and template
        were not sent but another alias was (the first in TOKEN_LIMIT_ALIASES order)."""
        renamed: dict[str, tuple[str, Any]] = {}
        for name, names, own in self._limits:
            if any(params.get(n) is not None for n in names[:own]):
                continue  # its name or template: the usual path takes it
            for other in names[own:]:
                if params.get(other) is not None:
                    renamed[name] = (other, params[other])
                    break
        return renamed

    def __call__(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        if not params:
            params = {}
        out: dict[str, Any] = {}
        violations: list[FieldViolation] | None = None
        renamed = self._token_limit(params) if self._limits else {}
        get = params.get
        for name, alias, required, default, check, field, alias_field, missing in self._rules:
            value = get(name)
            if value is None:
                if name in renamed:
                    sent_as, value = renamed[name]
                    field = _FIELD_PREFIX + sent_as
                elif alias is not None and alias in params:
                    value = params[alias]
                    # Point at the key the caller actually sent; the message keeps Dify's rule name.
                    field = alias_field
                elif required:
                    if default is not None:
                        out[name] = default  # Dify stores the default without checking it
                        continue
                    violations = violations or []
                    violations.append(FieldViolation(field, missing))
                    continue
                else:
                    continue
            result = check(value)
            if type(result) is _Bad:
                violations = violations or []
                violations.append(FieldViolation(field, str(result)))
                continue
            out[name] = result
        if violations:
            raise InvokeBadRequestError(
                " ".join(v.description for v in violations), field_violations=violations
            )
        return out



class PerSchema(Generic[T]):
    """Something built once per model schema from one of its lists, and cached.

    Keyed by ``id(schema)``: schemas are treated as immutable once loaded; replacing the watched
    list (a new list) invalidates the entry, mutating it in place does not. A weakref callback
    drops the entries of collected schemas (customizable schemas are rebuilt per request and must
    not accumulate here).
    """

    def __init__(self, build: Callable[[AIModelEntity], T], watch: Callable[[AIModelEntity], list[Any]]) -> None:
        self._build = build
        self._watch = watch
        self._cache: dict[int, tuple[weakref.ref[AIModelEntity], list[Any], T]] = {}

    def __call__(self, schema: AIModelEntity) -> T:
        key = id(schema)
        entry = self._cache.get(key)
        if entry is not None and entry[0]() is schema and entry[1] is self._watch(schema):
            return entry[2]
        built = self._build(schema)
        cache = self._cache

        def _drop(dead: weakref.ref[AIModelEntity], key: int = key) -> None:
            current = cache.get(key)
            if current is not None and current[0] is dead:
                cache.pop(key, None)

        cache[key] = (weakref.ref(schema, _drop), self._watch(schema), built)
        return built


# The cached validator of a model schema (built on first use).
validator_for: PerSchema[ParameterValidator] = PerSchema(
    lambda model: ParameterValidator(model.parameter_rules), lambda model: model.parameter_rules)
