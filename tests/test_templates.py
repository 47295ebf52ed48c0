"""Parameter-rule templates and both Dify merge semantics (spec §1.6, §4.3)."""

from __future__ import annotations

import pytest

from engine.entities import I18nObject, ParameterRule, ParameterType
from engine.templates import PARAMETER_RULE_TEMPLATE, fill_customizable_rule, merge_predefined_rule

# name: (label en_US, type, default, min, max, precision, options) — the table of spec §1.6, plus the
# plugin SDK's ninth template (issue 16: the set and its texts equal the SDK's).
EXPECTED = {
    "temperature": ("Temperature", "float", 0.0, 0.0, 1.0, 2, None),
    "top_p": ("Top P", "float", 1.0, 0.0, 1.0, 2, None),
    "top_k": ("Top K", "int", 50, 1, 100, 0, None),
    "presence_penalty": ("Presence Penalty", "float", 0.0, 0.0, 1.0, 2, None),
    "frequency_penalty": ("Frequency Penalty", "float", 0.0, 0.0, 1.0, 2, None),
    "max_tokens": ("Max Tokens", "int", 64, 1, 2048, 0, None),
    "response_format": ("Response Format", "string", None, None, None, None, ["JSON", "XML"]),
    "json_schema": ("JSON Schema", "text", None, None, None, None, None),
    "encouraged_response_prefix": ("Encouraged response prefix", "text", None, None, None, None, None),
}


def test_exactly_the_nine_dify_sdk_templates() -> None:
    assert list(PARAMETER_RULE_TEMPLATE) == list(EXPECTED)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_template_values(name: str) -> None:
    label, type_, default, min_, max_, precision, options = EXPECTED[name]
    t = PARAMETER_RULE_TEMPLATE[name]
    assert t["label"]["en_US"] == label
    assert t["label"]["zh_Hans"]
    assert t["type"] == type_
    assert t["required"] is False
    assert t.get("default") == default and type(t.get("default")) is type(default)
    assert t.get("min") == min_
    assert t.get("max") == max_
    assert t.get("precision") == precision
    assert t.get("options") == options
    assert t["help"]["en_US"] and t["help"]["zh_Hans"]
    # Every template must build a valid rule on its own.
    ParameterRule(name=name, **t)


def test_zh_labels() -> None:
    assert PARAMETER_RULE_TEMPLATE["temperature"]["label"]["zh_Hans"] == "温度"
    assert PARAMETER_RULE_TEMPLATE["max_tokens"]["label"]["zh_Hans"] == "最大标记"  # the SDK's wording


# ---- predefined YAML semantics -------------------------------------------------------------


def test_predefined_override_keeps_the_rest_of_the_template() -> None:
    raw = {"name": "max_tokens", "use_template": "max_tokens", "default": 16384, "max": 16384}
    merged = merge_predefined_rule(raw)
    assert merged["default"] == 16384 and merged["max"] == 16384
    assert merged["min"] == 1 and merged["precision"] == 0 and merged["type"] == "int"
    assert merged["label"] == {"en_US": "Max Tokens", "zh_Hans": "最大标记"}
    assert merged["help"] == PARAMETER_RULE_TEMPLATE["max_tokens"]["help"]
    rule = ParameterRule(**merged)
    assert rule.max == 16384 and rule.label is not None and rule.label.en_US == "Max Tokens"


def test_predefined_yaml_wins_key_by_key_even_for_label_and_type() -> None:
    raw = {"name": "temperature", "use_template": "temperature", "label": {"en_US": "Temp"}, "max": 2.0}
    merged = merge_predefined_rule(raw)
    assert merged["label"] == {"en_US": "Temp"}  # whole key replaced, not merged
    assert merged["max"] == 2.0 and merged["min"] == 0.0


def test_predefined_vendor_name_with_template() -> None:
    merged = merge_predefined_rule({"name": "max_tokens_to_sample", "use_template": "max_tokens"})
    assert merged["name"] == "max_tokens_to_sample"
    assert merged["label"]["en_US"] == "Max Tokens"  # the template label, not the name


def test_predefined_does_not_touch_template_or_input() -> None:
    raw = {"name": "top_p", "use_template": "top_p"}
    merged = merge_predefined_rule(raw)
    merged["label"]["en_US"] = "changed"
    merged["help"]["en_US"] = "changed"
    assert PARAMETER_RULE_TEMPLATE["top_p"]["label"]["en_US"] == "Top P"
    assert PARAMETER_RULE_TEMPLATE["top_p"]["help"]["en_US"] != "changed"
    assert raw == {"name": "top_p", "use_template": "top_p"}
    # two merges do not share nested dicts
    assert merge_predefined_rule(raw)["label"]["en_US"] == "Top P"


@pytest.mark.parametrize("use_template", ["no_such_template", None, 3, ["top_p"]])
def test_predefined_unknown_template_ignored_silently(use_template: object) -> None:
    raw = {"name": "seed", "use_template": use_template, "type": "int"}
    merged = merge_predefined_rule(raw)
    assert merged == {**raw, "label": {"en_US": "seed", "zh_Hans": "seed"}}


def test_predefined_label_defaults_to_name() -> None:
    merged = merge_predefined_rule({"name": "seed", "type": "int"})
    assert merged["label"] == {"en_US": "seed", "zh_Hans": "seed"}
    assert "min" not in merged and "help" not in merged


def test_predefined_explicit_label_kept() -> None:
    merged = merge_predefined_rule({"name": "seed", "type": "int", "label": {"en_US": "Seed"}})
    assert merged["label"] == {"en_US": "Seed"}


# ---- customizable semantics ----------------------------------------------------------------


def test_customizable_fills_only_falsy_fields() -> None:
    rule = ParameterRule(
        name="temperature", use_template="temperature", type=ParameterType.FLOAT, min=0, max=2.0, default=0.7
    )
    filled = fill_customizable_rule(rule)
    assert filled.max == 2.0  # truthy: kept
    assert filled.default == 0.7  # truthy: kept
    assert filled.min == 0.0  # falsy 0: replaced by the template (also 0.0)
    assert filled.precision == 2  # None: filled
    assert filled.required is False
    assert filled.help is not None
    assert filled.help.en_US == PARAMETER_RULE_TEMPLATE["temperature"]["help"]["en_US"]
    assert filled.help.zh_Hans == PARAMETER_RULE_TEMPLATE["temperature"]["help"]["zh_Hans"]


def test_customizable_explicit_zero_is_overwritten() -> None:
    rule = ParameterRule(
        name="max_tokens", use_template="max_tokens", type=ParameterType.INT, max=0, default=0
    )
    filled = fill_customizable_rule(rule)
    assert filled.max == 2048 and filled.default == 64 and filled.min == 1 and filled.precision == 0
    assert type(filled.max) is int  # assigned without coercion, as in Dify


def test_customizable_keeps_truthy_values_and_does_not_mutate_input() -> None:
    rule = ParameterRule(
        name="top_k", use_template="top_k", type=ParameterType.INT, min=5, max=40, default=10, precision=1
    )
    filled = fill_customizable_rule(rule)
    assert (filled.min, filled.max, filled.default, filled.precision) == (5, 40, 10, 1)
    assert rule.help is None and filled.help is not None


def test_customizable_help_languages_filled_separately() -> None:
    help_obj = I18nObject(en_US="My help")
    rule = ParameterRule(name="top_p", use_template="top_p", type=ParameterType.FLOAT, help=help_obj)
    assert rule.help is not None
    rule.help.zh_Hans = None  # I18nObject copies en_US into zh_Hans on build; undo that
    filled = fill_customizable_rule(rule)
    assert filled.help is not None
    assert filled.help.en_US == "My help"
    assert filled.help.zh_Hans == PARAMETER_RULE_TEMPLATE["top_p"]["help"]["zh_Hans"]
    assert help_obj.zh_Hans is None  # input untouched

    empty = I18nObject(en_US="", zh_Hans="")
    rule2 = ParameterRule(name="top_p", use_template="top_p", type=ParameterType.FLOAT, help=empty)
    filled2 = fill_customizable_rule(rule2)
    assert filled2.help is not None
    assert filled2.help.en_US == PARAMETER_RULE_TEMPLATE["top_p"]["help"]["en_US"]
    assert filled2.help.zh_Hans == PARAMETER_RULE_TEMPLATE["top_p"]["help"]["zh_Hans"]


def test_customizable_string_template_has_no_range() -> None:
    rule = ParameterRule(name="response_format", use_template="response_format", type=ParameterType.STRING)
    filled = fill_customizable_rule(rule)
    assert filled.min is None and filled.max is None and filled.default is None
    assert filled.options == []  # options are not among the filled fields
    assert filled.help is not None


@pytest.mark.parametrize("use_template", [None, "nope"])
def test_customizable_without_known_template_unchanged(use_template: str | None) -> None:
    rule = ParameterRule(name="x", use_template=use_template, type=ParameterType.INT)
    filled = fill_customizable_rule(rule)
    assert filled.model_dump() == rule.model_dump()
    assert filled.max is None and filled.help is None
