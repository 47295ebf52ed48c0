"""Model-parameter validation: Dify's ``_validate_and_filter_model_parameters`` (spec §3.4)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from google.protobuf import json_format, struct_pb2

from engine.entities import AIModelEntity, ParameterRule, ParameterType
from engine.errors import InvokeBadRequestError
from engine.rules import ParameterValidator, validator_for


def validate_parameters(rules, params):
    return ParameterValidator(rules)(params)
from engine.templates import merge_predefined_rule


def rule(**kw: Any) -> ParameterRule:
    return ParameterRule(**merge_predefined_rule(kw))


TEMPERATURE = rule(name="temperature", use_template="temperature")  # float 0..1, precision 2
TOP_K = rule(name="top_k", use_template="top_k")  # int 1..100
MAX_TOKENS = rule(name="max_tokens", use_template="max_tokens", max=16384)
RESPONSE_FORMAT = rule(name="response_format", use_template="response_format")
JSON_SCHEMA = rule(name="json_schema", use_template="json_schema")


def errors_of(rules: list[ParameterRule], params: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(InvokeBadRequestError) as info:
        validate_parameters(rules, params)
    return [(v.field, v.description) for v in info.value.field_violations]


def one_error(rules: list[ParameterRule], params: dict[str, Any]) -> tuple[str, str]:
    errs = errors_of(rules, params)
    assert len(errs) == 1, errs
    return errs[0]


# ---- filtering, alias, required ------------------------------------------------------------


def test_unknown_keys_dropped_and_input_untouched() -> None:
    params = {"temperature": 0.5, "foo": 1, "user": "x"}
    assert validate_parameters([TEMPERATURE], params) == {"temperature": 0.5}
    assert params == {"temperature": 0.5, "foo": 1, "user": "x"}


def test_empty_or_none_params() -> None:
    assert validate_parameters([TEMPERATURE, TOP_K], {}) == {}
    assert validate_parameters([TEMPERATURE], None) == {}
    assert validate_parameters([], {"temperature": 5}) == {}


def test_non_required_default_not_applied() -> None:
    assert TEMPERATURE.default == 0.0 and not TEMPERATURE.required
    assert validate_parameters([TEMPERATURE, MAX_TOKENS], {}) == {}


def test_none_value_without_alias_key_is_skipped() -> None:
    seed = rule(name="seed", type="int")
    assert validate_parameters([seed], {"seed": None}) == {}


def test_alias_via_use_template() -> None:
    r = rule(name="max_tokens_to_sample", use_template="max_tokens")
    assert validate_parameters([r], {"max_tokens": 100}) == {"max_tokens_to_sample": 100}
    # the vendor name wins when both are present
    assert validate_parameters([r], {"max_tokens": 100, "max_tokens_to_sample": 7}) == {
        "max_tokens_to_sample": 7
    }
    # vendor name present but None: falls back to the alias
    assert validate_parameters([r], {"max_tokens": 5, "max_tokens_to_sample": None}) == {
        "max_tokens_to_sample": 5
    }


def test_alias_error_names_the_sent_key_with_dify_message() -> None:
    r = rule(name="max_tokens_to_sample", use_template="max_tokens")
    assert one_error([r], {"max_tokens": 0}) == (
        "model_parameters.max_tokens",
        "Model Parameter max_tokens_to_sample should be greater than or equal to 1.0.",
    )


def test_alias_key_present_with_none_fails_type_check_like_dify() -> None:
    # Dify takes params[use_template] even when it is None, then the type check rejects it.
    assert one_error([TEMPERATURE], {"temperature": None}) == (
        "model_parameters.temperature",
        "Model Parameter temperature should be float.",
    )


def test_required_uses_default_unchecked() -> None:
    r = rule(name="n", type="int", required=True, default=3, max=2)
    assert validate_parameters([r], {}) == {"n": 3}  # default not range-checked (Dify)
    assert validate_parameters([r], {"n": None}) == {"n": 3}


def test_required_without_default() -> None:
    r = rule(name="model_id", type="string", required=True)
    assert one_error([r], {}) == ("model_parameters.model_id", "Model Parameter model_id is required.")


def test_required_with_alias_uses_alias_before_default() -> None:
    r = rule(name="max_output", use_template="max_tokens", required=True, default=64)
    assert validate_parameters([r], {"max_tokens": 10}) == {"max_output": 10}
    assert validate_parameters([r], {}) == {"max_output": 64}


# ---- int -----------------------------------------------------------------------------------


def test_int_ok_and_range_inclusive() -> None:
    assert validate_parameters([TOP_K], {"top_k": 1}) == {"top_k": 1}
    assert validate_parameters([TOP_K], {"top_k": 100}) == {"top_k": 100}


def test_int_range_messages() -> None:
    assert one_error([TOP_K], {"top_k": 0}) == (
        "model_parameters.top_k",
        "Model Parameter top_k should be greater than or equal to 1.0.",
    )
    assert (
        one_error([TOP_K], {"top_k": 101})[1]
        == "Model Parameter top_k should be less than or equal to 100.0."
    )


@pytest.mark.parametrize("bad", ["5", 1.5, [1], {"a": 1}, math.nan, math.inf])
def test_int_type(bad: Any) -> None:
    assert one_error([TOP_K], {"top_k": bad})[1] == "Model Parameter top_k should be int."


def test_int_accepts_integral_float_from_struct_and_converts() -> None:
    out = validate_parameters([TOP_K, MAX_TOKENS], {"top_k": 40.0, "max_tokens": 16384.0})
    assert out == {"top_k": 40, "max_tokens": 16384}
    assert type(out["top_k"]) is int and type(out["max_tokens"]) is int
    assert one_error([TOP_K], {"top_k": 100.5})[1] == "Model Parameter top_k should be int."
    assert (
        one_error([TOP_K], {"top_k": 101.0})[1]
        == "Model Parameter top_k should be less than or equal to 100.0."
    )


def test_real_struct_round_trip() -> None:
    s = struct_pb2.Struct()
    json_format.Parse('{"top_k": 5, "temperature": 1, "stream": true, "response_format": "JSON"}', s)
    params = json_format.MessageToDict(s)
    assert type(params["top_k"]) is float  # what the servicer actually receives
    flag = rule(name="stream", type="boolean")
    out = validate_parameters([TOP_K, TEMPERATURE, flag, RESPONSE_FORMAT], params)
    assert out == {"top_k": 5, "temperature": 1.0, "stream": True, "response_format": "JSON"}
    assert type(out["top_k"]) is int


def test_bool_passes_as_int_like_python() -> None:
    r = rule(name="n", type="int")
    assert validate_parameters([r], {"n": True}) == {"n": True}
    assert (
        one_error([TOP_K], {"top_k": False})[1]
        == "Model Parameter top_k should be greater than or equal to 1.0."
    )


# ---- float ---------------------------------------------------------------------------------


def test_float_ok_int_accepted_and_kept() -> None:
    assert validate_parameters([TEMPERATURE], {"temperature": 0.7}) == {"temperature": 0.7}
    out = validate_parameters([TEMPERATURE], {"temperature": 1})
    assert out == {"temperature": 1} and type(out["temperature"]) is int  # no conversion


def test_float_bool_accepted_like_dify() -> None:
    # Dify: isinstance(True, float | int) is True, so a bool passes a float rule.
    assert validate_parameters([TEMPERATURE], {"temperature": True}) == {"temperature": True}


@pytest.mark.parametrize("bad", ["0.5", None, [0.5], math.nan, math.inf, -math.inf])
def test_float_type(bad: Any) -> None:
    assert one_error([TEMPERATURE], {"temperature": bad})[1] == "Model Parameter temperature should be float."


def test_float_range_inclusive_and_messages() -> None:
    assert validate_parameters([TEMPERATURE], {"temperature": 0.0}) == {"temperature": 0.0}
    assert validate_parameters([TEMPERATURE], {"temperature": 1.0}) == {"temperature": 1.0}
    assert one_error([TEMPERATURE], {"temperature": 1.01}) == (
        "model_parameters.temperature",
        "Model Parameter temperature should be less than or equal to 1.0.",
    )
    assert one_error([TEMPERATURE], {"temperature": -0.5})[1] == (
        "Model Parameter temperature should be greater than or equal to 0.0."
    )


def test_float_precision_2() -> None:
    assert validate_parameters([TEMPERATURE], {"temperature": 0.12}) == {"temperature": 0.12}
    assert one_error([TEMPERATURE], {"temperature": 0.123})[1] == (
        "Model Parameter temperature should be round to 2 decimal places."
    )


def test_float_precision_checked_before_range() -> None:
    assert one_error([TEMPERATURE], {"temperature": 1.555})[1] == (
        "Model Parameter temperature should be round to 2 decimal places."
    )


def test_float_precision_0() -> None:
    r = rule(name="steps", type="float", precision=0, min=1, max=10)
    out = validate_parameters([r], {"steps": 3.0})
    assert out == {"steps": 3.0} and type(out["steps"]) is float  # float rules never convert
    assert one_error([r], {"steps": 3.5})[1] == "Model Parameter steps should be int."


def test_float_without_precision_any_decimals() -> None:
    r = rule(name="x", type="float")
    assert validate_parameters([r], {"x": 0.123456789}) == {"x": 0.123456789}


# ---- boolean, string, text -----------------------------------------------------------------


@pytest.mark.parametrize("bad", [1, 0, 1.0, "true", "false"])
def test_boolean_must_be_bool(bad: Any) -> None:
    r = rule(name="enable_search", type="boolean")
    assert one_error([r], {"enable_search": bad})[1] == "Model Parameter enable_search should be bool."


def test_boolean_ok() -> None:
    r = rule(name="enable_search", type="boolean")
    assert validate_parameters([r], {"enable_search": False}) == {"enable_search": False}


def test_string_options() -> None:
    assert validate_parameters([RESPONSE_FORMAT], {"response_format": "XML"}) == {"response_format": "XML"}
    assert one_error([RESPONSE_FORMAT], {"response_format": "json"}) == (
        "model_parameters.response_format",
        "Model Parameter response_format should be one of ['JSON', 'XML'].",
    )
    assert one_error([RESPONSE_FORMAT], {"response_format": 1.0})[1] == (
        "Model Parameter response_format should be string."
    )


def test_string_without_options_accepts_any_str() -> None:
    r = rule(name="stop_word", type="string")
    assert validate_parameters([r], {"stop_word": ""}) == {"stop_word": ""}


def test_text_type_and_options() -> None:
    assert validate_parameters([JSON_SCHEMA], {"json_schema": '{"type":"object"}'}) == {
        "json_schema": '{"type":"object"}'
    }
    assert one_error([JSON_SCHEMA], {"json_schema": {"type": "object"}})[1] == (
        "Model Parameter json_schema should be text."
    )
    r = rule(name="mode", type="text", options=["a", "b"])  # v0.15 checks options for text too
    assert one_error([r], {"mode": "c"})[1] == "Model Parameter mode should be one of ['a', 'b']."
    assert validate_parameters([r], {"mode": "a"}) == {"mode": "a"}


def test_unsupported_type() -> None:
    r = ParameterRule.model_construct(
        name="x",
        type="weird",
        use_template=None,
        required=False,
        default=None,
        min=None,
        max=None,
        precision=None,
        options=[],
    )
    assert one_error([r], {"x": 1})[1] == "Model Parameter x type weird is not supported."


# ---- error shape ---------------------------------------------------------------------------


def test_all_violations_collected_in_rule_order() -> None:
    req = rule(name="model_id", type="string", required=True)
    errs = errors_of(
        [TEMPERATURE, TOP_K, RESPONSE_FORMAT, req],
        {"response_format": "YAML", "temperature": 2.0, "top_k": 50},
    )
    assert errs == [
        ("model_parameters.temperature", "Model Parameter temperature should be less than or equal to 1.0."),
        (
            "model_parameters.response_format",
            "Model Parameter response_format should be one of ['JSON', 'XML'].",
        ),
        ("model_parameters.model_id", "Model Parameter model_id is required."),
    ]


def test_error_class_and_description() -> None:
    with pytest.raises(InvokeBadRequestError) as info:
        validate_parameters([TEMPERATURE], {"temperature": 3})
    err = info.value
    assert err.reason == "InvokeBadRequestError"
    assert str(err) == "Model Parameter temperature should be less than or equal to 1.0."


# ---- compiled validator and cache ----------------------------------------------------------


def _entity(rules: list[ParameterRule]) -> AIModelEntity:
    return AIModelEntity(model="m", model_type="llm", parameter_rules=rules)


def test_validator_reusable() -> None:
    v = ParameterValidator([TEMPERATURE, TOP_K])
    assert v({"temperature": 0.3}) == {"temperature": 0.3}
    assert v({"top_k": 3.0}) == {"top_k": 3}
    with pytest.raises(InvokeBadRequestError):
        v({"top_k": 0})
    assert v({"temperature": 0.4}) == {"temperature": 0.4}


def test_validator_for_caches_per_entity() -> None:
    a, b = _entity([TEMPERATURE]), _entity([TOP_K])
    va = validator_for(a)
    assert validator_for(a) is va
    assert validator_for(b) is not va
    assert validator_for(b)({"top_k": 2, "temperature": 0.5}) == {"top_k": 2}


def test_validator_for_rebuilds_when_rules_replaced() -> None:
    e = _entity([TEMPERATURE])
    v1 = validator_for(e)
    e.parameter_rules = [TOP_K]
    v2 = validator_for(e)
    assert v2 is not v1
    assert v2({"top_k": 2, "temperature": 0.5}) == {"top_k": 2}


def test_validator_cache_releases_dead_entities() -> None:
    import gc

    before = len(validator_for._cache)
    for _ in range(50):
        validator_for(_entity([TEMPERATURE]))
    gc.collect()
    assert len(validator_for._cache) <= before + 1


def test_parameter_type_enum_is_used() -> None:
    assert TEMPERATURE.type is ParameterType.FLOAT and TOP_K.type is ParameterType.INT
