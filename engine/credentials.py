"""Credential-form validation: Dify's ``CommonValidator`` (``schema_validators/common_validator.py``).

Rules reproduced (v0.15.3):

1. Active fields: a field with empty ``show_on`` is always active; otherwise **every**
   ``{variable, value}`` condition must be present in the credentials with an equal value. For
   model credentials ``__model_type`` (e.g. ``llm``) is injected first, so a field can apply to
   one model type only. Several declarations of one variable: the last active one wins.
2. Missing or falsy value ("", None, False, 0): required → "Variable {v} is required"; otherwise
   the ``default`` if truthy (stored as-is, unchecked: a switch default stays the string
   ``"false"``), else the field is left out.
3. Otherwise, in this order: ``max_length`` (0 = none), must be a str, select/radio value must be
   one of the options, switch must be true/false in any case and becomes a Python bool.
4. Output: only validated fields whose result is truthy. So a switch set to ``"false"`` is
   *dropped* (Dify quirk, kept). Unknown keys and ``__model_type`` never reach the output.

Values from google.protobuf.Struct may be float/bool/str/list; a non-string where a string is
expected fails with "should be string", as in Dify. Unlike Dify, every failing field is reported
in one ``CredentialsValidateFailedError`` (Dify stops at the first).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any

from engine.entities import CredentialFormSchema, FormType
from engine.errors import CredentialsValidateFailedError, FieldViolation

MODEL_TYPE_VARIABLE = "__model_type"
HIDDEN_VALUE = "[__HIDDEN__]"  # Dify's placeholder for a stored secret (api/constants)

_FIELD_PREFIX = "credentials."
_CHOICE_TYPES = (FormType.SELECT, FormType.RADIO)


def _is_active(schema: CredentialFormSchema, credentials: Mapping[str, Any]) -> bool:
    for cond in schema.show_on:
        if cond.variable not in credentials or credentials[cond.variable] != cond.value:
            return False
    return True


def active_fields(
    schemas: list[CredentialFormSchema], credentials: Mapping[str, Any]
) -> dict[str, CredentialFormSchema]:
    """variable → the field declaration that applies to these credentials."""
    active: dict[str, CredentialFormSchema] = {}
    for schema in schemas:
        if not schema.show_on or _is_active(schema, credentials):
            # A later active declaration replaces an earlier one (dict keeps the first position).
            active[schema.variable] = schema
    return active


def _check_value(schema: CredentialFormSchema, value: Any) -> tuple[Any, str | None]:
    """(validated value, None) or (None, Dify's error text) for a present, truthy value."""
    v = schema.variable
    if schema.max_length:
        try:
            length = len(value)
        except TypeError:  # numbers/bools from Struct: Dify would crash here; report the type
            length = None
        if length is not None and length > schema.max_length:
            return None, f"Variable {v} length should not greater than {schema.max_length}"
    if not isinstance(value, str):
        return None, f"Variable {v} should be string"
    if (
        schema.type in _CHOICE_TYPES
        and schema.options
        and all(value != option.value for option in schema.options)
    ):
        return None, f"Variable {v} is not in options"
    if schema.type is FormType.SWITCH:
        lowered = value.lower()
        if lowered not in ("true", "false"):
            return None, f"Variable {v} should be true or false"
        return lowered == "true", None
    return value, None


def validate_credentials(
    schemas: list[CredentialFormSchema],
    credentials: Mapping[str, Any] | None,
    *,
    model_type: str | Enum | None = None,
) -> dict[str, Any]:
    """Validate and filter a credentials dict against its form; returns the filtered dict.

    ``model_type`` is given for model credentials (it becomes ``__model_type`` for ``show_on``).
    The caller's dict is not modified. Raises ``CredentialsValidateFailedError`` listing every
    failing field.
    """
    creds: Mapping[str, Any] = credentials or {}
    if model_type is not None:
        creds = {**creds, MODEL_TYPE_VARIABLE: getattr(model_type, "value", model_type)}

    out: dict[str, Any] = {}
    violations: list[FieldViolation] = []
    for variable, schema in active_fields(schemas, creds).items():
        value = creds.get(variable)
        if not value:
            if schema.required:
                violations.append(
                    FieldViolation(_FIELD_PREFIX + variable, f"Variable {variable} is required")
                )
            elif schema.default:
                out[variable] = schema.default
            continue
        result, error = _check_value(schema, value)
        if error is not None:
            violations.append(FieldViolation(_FIELD_PREFIX + variable, error))
        elif result:
            out[variable] = result
    if violations:
        raise CredentialsValidateFailedError(
            "; ".join(v.description for v in violations), field_violations=violations
        )
    return out


def _secret_variables(schemas: list[CredentialFormSchema]) -> set[str]:
    return {s.variable for s in schemas if s.type is FormType.SECRET_INPUT}


def mask_secrets(schemas: list[CredentialFormSchema], credentials: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``credentials`` with every non-empty secret-input value replaced by ``[__HIDDEN__]``.

    Empty values stay empty so a caller can still tell "not set" from "set".
    """
    secrets = _secret_variables(schemas)
    return {k: (HIDDEN_VALUE if k in secrets and v else v) for k, v in credentials.items()}
