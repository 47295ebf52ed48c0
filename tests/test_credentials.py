"""Credential-form validation (spec §1.4, §4.4), secret masking."""

from __future__ import annotations

from typing import Any

import pytest

from engine.credentials import HIDDEN_VALUE, mask_secrets, validate_credentials
from engine.entities import CredentialFormSchema, ModelType
from engine.errors import CredentialsValidateFailedError


def field(variable: str, type_: str = "text-input", **kw: Any) -> CredentialFormSchema:
    return CredentialFormSchema(variable=variable, label={"en_US": variable}, type=type_, **kw)


def errors_of(schemas: list[CredentialFormSchema], creds: dict[str, Any], **kw: Any) -> list[tuple[str, str]]:
    with pytest.raises(CredentialsValidateFailedError) as info:
        validate_credentials(schemas, creds, **kw)
    return [(v.field, v.description) for v in info.value.field_violations]


API_KEY = field("api_key", "secret-input")
ENDPOINT = field("endpoint_url", required=False, default="https://api.example.com/v1")
MODE = field(
    "mode",
    "select",
    required=False,
    default="chat",
    options=[{"value": "chat"}, {"value": "completion"}],
    show_on=[{"variable": "__model_type", "value": "llm"}],
)
# openai_api_compatible declares context_size once per model type
CTX_LLM = field(
    "context_size", required=False, default="4096", show_on=[{"variable": "__model_type", "value": "llm"}]
)
CTX_EMB = field(
    "context_size",
    required=False,
    default="512",
    show_on=[{"variable": "__model_type", "value": "text-embedding"}],
)
VISION = field(
    "vision_support", "radio", required=False, options=[{"value": "support"}, {"value": "no_support"}]
)
STREAM = field("stream", "switch", required=False)


def test_basic_filtering_removes_unknown_keys() -> None:
    creds = {"api_key": "sk-1", "extra": "x", "endpoint_url": "https://h/v1"}
    assert validate_credentials([API_KEY, ENDPOINT], creds) == {
        "api_key": "sk-1",
        "endpoint_url": "https://h/v1",
    }
    assert creds == {"api_key": "sk-1", "extra": "x", "endpoint_url": "https://h/v1"}


def test_model_type_injected_for_show_on_and_removed() -> None:
    creds = {"api_key": "k"}
    out = validate_credentials([API_KEY, MODE, CTX_LLM, CTX_EMB], creds, model_type="llm")
    assert out == {"api_key": "k", "mode": "chat", "context_size": "4096"}
    assert "__model_type" not in out and "__model_type" not in creds  # caller's dict untouched


def test_model_type_enum_accepted() -> None:
    out = validate_credentials([CTX_LLM, CTX_EMB], {}, model_type=ModelType.TEXT_EMBEDDING)
    assert out == {"context_size": "512"}


def test_without_model_type_model_scoped_fields_inactive() -> None:
    # Provider credentials: __model_type is not injected, so show_on fields never apply.
    assert validate_credentials([MODE, CTX_LLM], {"mode": "completion", "context_size": "9"}) == {}


def test_submitted_model_type_key_not_output() -> None:
    out = validate_credentials([CTX_LLM], {"__model_type": "llm", "context_size": "8"})
    assert out == {"context_size": "8"}


def test_show_on_requires_all_conditions() -> None:
    f = field(
        "delimiter",
        required=True,
        show_on=[{"variable": "__model_type", "value": "llm"}, {"variable": "mode", "value": "completion"}],
    )
    # only one of two conditions true → inactive → not required, dropped even though submitted
    assert validate_credentials([f], {"mode": "chat", "delimiter": "x"}, model_type="llm") == {}
    assert validate_credentials([f], {"mode": "completion", "delimiter": "x"}, model_type="tts") == {}
    # both true → active and required
    assert validate_credentials([f], {"mode": "completion", "delimiter": "x"}, model_type="llm") == {
        "delimiter": "x"
    }
    assert errors_of([f], {"mode": "completion"}, model_type="llm") == [
        ("credentials.delimiter", "Variable delimiter is required")
    ]


def test_show_on_exact_comparison() -> None:
    f = field("x", show_on=[{"variable": "flag", "value": "1"}])
    assert validate_credentials([f], {"flag": 1.0, "x": "v"}) == {}  # Struct float is not "1"
    assert validate_credentials([f], {"flag": "1 ", "x": "v"}) == {}
    assert validate_credentials([f], {"flag": "1", "x": "v"}) == {"x": "v"}
    g = field("y", show_on=[{"variable": "__model_type", "value": "llm"}])
    assert validate_credentials([g], {"y": "v"}, model_type="LLM") == {}


def test_inactive_required_field_is_not_an_error() -> None:
    f = field("secret_for_tts", required=True, show_on=[{"variable": "__model_type", "value": "tts"}])
    assert validate_credentials([f], {}, model_type="llm") == {}


def test_last_active_declaration_wins() -> None:
    a = field("x", required=False, default="first")
    b = field("x", required=False, default="second")
    assert validate_credentials([a, b], {}) == {"x": "second"}


@pytest.mark.parametrize("value", ["", None, False, 0, 0.0])
def test_required_falsy_values(value: Any) -> None:
    assert errors_of([API_KEY], {"api_key": value}) == [
        ("credentials.api_key", "Variable api_key is required")
    ]


def test_required_missing() -> None:
    assert errors_of([API_KEY], {}) == [("credentials.api_key", "Variable api_key is required")]


def test_truthy_default_applied_for_missing_or_falsy() -> None:
    assert validate_credentials([ENDPOINT], {}) == {"endpoint_url": "https://api.example.com/v1"}
    assert validate_credentials([ENDPOINT], {"endpoint_url": ""}) == {
        "endpoint_url": "https://api.example.com/v1"
    }


def test_falsy_default_leaves_field_out() -> None:
    f = field("org", required=False, default="")
    g = field("org2", required=False)
    assert validate_credentials([f, g], {"org": "", "org2": None}) == {}


def test_default_is_stored_unchecked() -> None:
    sw = field("flag", "switch", required=False, default="false")
    sel = field("s", "select", required=False, default="zzz", options=[{"value": "a"}])
    assert validate_credentials([sw, sel], {}) == {"flag": "false", "s": "zzz"}


def test_max_length() -> None:
    f = field("name", max_length=5)
    assert validate_credentials([f], {"name": "abcde"}) == {"name": "abcde"}
    assert errors_of([f], {"name": "abcdef"}) == [
        ("credentials.name", "Variable name length should not greater than 5")
    ]


def test_max_length_zero_is_unlimited() -> None:
    f = field("name", max_length=0)
    assert validate_credentials([f], {"name": "a" * 10_000}) == {"name": "a" * 10_000}


@pytest.mark.parametrize("value", [1.0, True, 42, ["a"], {"a": "b"}])
def test_value_must_be_string(value: Any) -> None:
    assert errors_of([API_KEY], {"api_key": value}) == [
        ("credentials.api_key", "Variable api_key should be string")
    ]


def test_non_string_with_max_length() -> None:
    f = field("n", max_length=3)
    assert errors_of([f], {"n": 12345.0}) == [("credentials.n", "Variable n should be string")]
    assert errors_of([f], {"n": ["a", "b", "c", "d"]}) == [
        ("credentials.n", "Variable n length should not greater than 3")
    ]


def test_select_and_radio_options() -> None:
    creds = {"mode": "completion", "vision_support": "support"}
    assert validate_credentials([MODE, VISION], creds, model_type="llm") == creds
    assert errors_of([MODE], {"mode": "chat2"}, model_type="llm") == [
        ("credentials.mode", "Variable mode is not in options")
    ]
    assert errors_of([VISION], {"vision_support": "Support"}) == [
        ("credentials.vision_support", "Variable vision_support is not in options")
    ]


def test_select_without_options_accepts_any_string() -> None:
    f = field("region", "select", required=False)
    assert validate_credentials([f], {"region": "eu-west"}) == {"region": "eu-west"}


@pytest.mark.parametrize("value", ["true", "TRUE", "True", "tRuE"])
def test_switch_true_any_case(value: str) -> None:
    out = validate_credentials([STREAM], {"stream": value})
    assert out == {"stream": True} and out["stream"] is True


@pytest.mark.parametrize("value", ["false", "FALSE", "False"])
def test_switch_false_is_dropped_because_falsy(value: str) -> None:
    assert validate_credentials([STREAM], {"stream": value}) == {}


@pytest.mark.parametrize("value", ["yes", "1", "on"])
def test_switch_invalid(value: str) -> None:
    assert errors_of([STREAM], {"stream": value}) == [
        ("credentials.stream", "Variable stream should be true or false")
    ]


def test_switch_struct_bool_is_not_a_string() -> None:
    assert errors_of([STREAM], {"stream": True}) == [
        ("credentials.stream", "Variable stream should be string")
    ]


def test_all_violations_collected() -> None:
    f = field("name", max_length=2)
    errs = errors_of([API_KEY, f, VISION, STREAM], {"name": "abc", "vision_support": "x", "stream": "maybe"})
    assert errs == [
        ("credentials.api_key", "Variable api_key is required"),
        ("credentials.name", "Variable name length should not greater than 2"),
        ("credentials.vision_support", "Variable vision_support is not in options"),
        ("credentials.stream", "Variable stream should be true or false"),
    ]
    with pytest.raises(CredentialsValidateFailedError) as info:
        validate_credentials([API_KEY, f], {"name": "abc"})
    assert info.value.reason == "CredentialsValidateFailedError"
    assert "Variable api_key is required" in str(info.value)
    assert "Variable name length should not greater than 2" in str(info.value)


def test_none_credentials() -> None:
    assert validate_credentials([ENDPOINT], None) == {"endpoint_url": "https://api.example.com/v1"}


# ---- secrets -------------------------------------------------------------------------------

SECRET2 = field("secret_key", "secret-input", required=False)


def test_mask_secrets() -> None:
    creds = {"api_key": "sk-123", "secret_key": "", "endpoint_url": "https://h", "other": "x"}
    masked = mask_secrets([API_KEY, SECRET2, ENDPOINT], creds)
    assert masked == {"api_key": HIDDEN_VALUE, "secret_key": "", "endpoint_url": "https://h", "other": "x"}
    assert HIDDEN_VALUE == "[__HIDDEN__]"
    assert creds["api_key"] == "sk-123"
