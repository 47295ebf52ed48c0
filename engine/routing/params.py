"""The caller's parameters, fitted to the model that serves a routed call.

Why: a route's deployments are different models with different parameter rules. A caller who
asked for ``max_tokens: 8000`` on a route whose fallback model allows 4096 should be served by
the fallback, not rejected by it; a ``reasoning_effort`` the fallback has no rule for is not sent
at all. So each deployment's own rules decide: numbers are clamped into the rule's range, option
values the rule does not list are dropped, keys no rule (or rule template) names are dropped. The
model's validator then checks the result as for any call (a wrong type is still the caller's
error). Deployment overrides are laid over the caller's values first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..entities import AIModelEntity, ParameterRule, ParameterType

_DROP = object()


def fit_parameters(schema: AIModelEntity | None, params: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict:
    merged = {**params, **overrides} if overrides else dict(params)
    if schema is None or not merged:
        return merged
    rules: dict[str, ParameterRule] = {}
    for rule in schema.parameter_rules:
        rules[rule.name] = rule
        if rule.use_template and rule.use_template not in rules:
            rules[rule.use_template] = rule
    out: dict[str, Any] = {}
    for key, value in merged.items():
        found = rules.get(key)
        if found is None:
            continue
        fitted = _fit(found, value)
        if fitted is not _DROP:
            out[key] = fitted
    return out


def _fit(rule: ParameterRule, value: Any) -> Any:
    if rule.type in (ParameterType.INT, ParameterType.FLOAT):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return value  # the validator names the type error
        if rule.min is not None and value < rule.min:
            value = rule.min
        if rule.max is not None and value > rule.max:
            value = rule.max
        if rule.type == ParameterType.INT and isinstance(value, float) and value.is_integer():
            value = int(value)
        return value
    if rule.options and isinstance(value, str) and value not in rule.options:
        return _DROP
    return value
