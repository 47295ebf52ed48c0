"""Dify's parameter-rule templates and the two ways Dify merges them into a rule.

A model YAML can say ``use_template: max_tokens`` instead of spelling out label, help, type,
range and precision. The table below has the Dify plugin SDK's nine templates (v0.15.3's eight of
``entities/defaults.py`` plus ``encouraged_response_prefix``), with the SDK's labels and help texts, so
a plugin's YAML shows the same words here as in Dify.

Two merge semantics exist in Dify and both are reproduced here:

* predefined YAML (``merge_predefined_rule``): the template dict is overridden key by key by the
  YAML, then ``label`` defaults to the rule name;
* customizable schema (``fill_customizable_rule``): template values fill only the *falsy* fields
  of an already-built rule (so an explicit ``0`` or ``False`` is replaced too).
"""

from __future__ import annotations

import copy
from typing import Any

from engine.entities import I18nObject, ParameterRule

PARAMETER_RULE_TEMPLATE: dict[str, dict[str, Any]] = {
    "temperature": {
        "label": {"en_US": "Temperature", "zh_Hans": "温度"},
        "type": "float",
        "help": {
            "en_US": "Controls randomness. Lower temperature results in less random completions."
            " As the temperature approaches zero, the model will become deterministic and repetitive."
            " Higher temperature results in more random completions.",
            "zh_Hans": "温度控制随机性。较低的温度会导致较少的随机完成。随着温度接近零，模型将变得确定性和重复性。"
            "较高的温度会导致更多的随机完成。",
        },
        "required": False,
        "default": 0.0,
        "min": 0.0,
        "max": 1.0,
        "precision": 2,
    },
    "top_p": {
        "label": {"en_US": "Top P", "zh_Hans": "Top P"},
        "type": "float",
        "help": {
            "en_US": "Controls diversity via nucleus sampling:"
            " 0.5 means half of all likelihood-weighted options are considered.",
            "zh_Hans": "通过核心采样控制多样性：0.5表示考虑了一半的所有可能性加权选项。",
        },
        "required": False,
        "default": 1.0,
        "min": 0.0,
        "max": 1.0,
        "precision": 2,
    },
    "top_k": {
        "label": {"en_US": "Top K", "zh_Hans": "Top K"},
        "type": "int",
        "help": {
            "en_US": "Limits the number of tokens to consider for each step by keeping only the k most likely tokens.",
            "zh_Hans": "通过只保留每一步中最可能的 k 个标记来限制要考虑的标记数量。",
        },
        "required": False,
        "default": 50,
        "min": 1,
        "max": 100,
        "precision": 0,
    },
    "presence_penalty": {
        "label": {"en_US": "Presence Penalty", "zh_Hans": "存在惩罚"},
        "type": "float",
        "help": {
            "en_US": "Applies a penalty to the log-probability of tokens already in the text.",
            "zh_Hans": "对文本中已有的标记的对数概率施加惩罚。",
        },
        "required": False,
        "default": 0.0,
        "min": 0.0,
        "max": 1.0,
        "precision": 2,
    },
    "frequency_penalty": {
        "label": {"en_US": "Frequency Penalty", "zh_Hans": "频率惩罚"},
        "type": "float",
        "help": {
            "en_US": "Applies a penalty to the log-probability of tokens that appear in the text.",
            "zh_Hans": "对文本中出现的标记的对数概率施加惩罚。",
        },
        "required": False,
        "default": 0.0,
        "min": 0.0,
        "max": 1.0,
        "precision": 2,
    },
    "max_tokens": {
        "label": {"en_US": "Max Tokens", "zh_Hans": "最大标记"},
        "type": "int",
        "help": {
            "en_US": "Specifies the upper limit on the length of generated results."
            " If the generated results are truncated, you can increase this parameter.",
            "zh_Hans": "指定生成结果长度的上限。如果生成结果截断，可以调大该参数。",
        },
        "required": False,
        "default": 64,
        "min": 1,
        "max": 2048,
        "precision": 0,
    },
    "response_format": {
        "label": {"en_US": "Response Format", "zh_Hans": "回复格式"},
        "type": "string",
        "help": {
            "en_US": "Set a response format, ensure the output from llm is a valid code block as possible,"
            " such as JSON, XML, etc.",
            "zh_Hans": "设置一个返回格式，确保llm的输出尽可能是有效的代码块，如JSON、XML等",
        },
        "required": False,
        "options": ["JSON", "XML"],
    },
    "json_schema": {
        # The SDK gives only en_US; I18nObject copies it to zh_Hans, which we spell out here.
        "label": {"en_US": "JSON Schema", "zh_Hans": "JSON Schema"},
        "type": "text",
        "help": {
            "en_US": "Set a response json schema will ensure LLM to adhere it.",
            "zh_Hans": "设置返回的json schema，llm将按照它返回",
        },
        "required": False,
    },
    "encouraged_response_prefix": {
        # Text the answer is nudged to start with (e.g. "<think>\n" for DeepSeek R1-style models).
        "label": {"en_US": "Encouraged response prefix", "zh_Hans": "引导回复前缀"},
        "type": "text",
        "help": {
            "en_US": "Encourage the model to response with the prefix.",
            "zh_Hans": "引导模型回复的前缀",
        },
        "required": False,
    },
}


def _template(name: Any) -> dict[str, Any] | None:
    # Dify looks the name up through an enum: a non-string or unknown name is ignored silently.
    return PARAMETER_RULE_TEMPLATE.get(name) if isinstance(name, str) else None


def merge_predefined_rule(raw: dict[str, Any]) -> dict[str, Any]:
    """Predefined-YAML semantics: template overridden key by key by the YAML rule.

    Returns a new dict (neither ``raw`` nor the template is modified). Afterwards a missing
    ``label`` becomes ``{en_US: name, zh_Hans: name}``; Dify tests key presence, not truthiness.
    """
    template = _template(raw.get("use_template"))
    # Deep copy: the nested label/help dicts must not be shared between rules.
    merged = copy.deepcopy(template) if template is not None else {}
    merged.update(raw)
    if "label" not in merged:
        name = merged.get("name")
        merged["label"] = {"en_US": name, "zh_Hans": name}
    return merged


def fill_customizable_rule(rule: ParameterRule) -> ParameterRule:
    """Customizable-schema semantics: fill falsy fields of ``rule`` from its template.

    ``max``, ``min``, ``default``, ``precision``, ``required`` and ``help`` are taken from the
    template only where the rule's value is falsy (Dify uses ``not value``, so ``0``/``False``
    are replaced as well). A present help object gets its empty ``en_US``/``zh_Hans`` filled
    separately. Returns a copy; the input rule is not changed.

    Values are assigned without pydantic coercion, as in Dify (so a filled ``max`` of
    ``max_tokens`` stays the int ``2048``).
    """
    template = _template(rule.use_template)
    if template is None:
        return rule
    updates: dict[str, Any] = {}
    for key in ("max", "min", "default", "precision", "required"):
        if not getattr(rule, key) and key in template:
            updates[key] = template[key]
    t_help: dict[str, str] | None = template.get("help")
    help_obj = rule.help
    if t_help:
        if not help_obj:
            # Dify builds I18nObject(en_US=...) here, which copies the English text into zh_Hans;
            # we take the template's own zh_Hans, as the 1.x SDK merge does.
            updates["help"] = I18nObject(en_US=t_help["en_US"], zh_Hans=t_help.get("zh_Hans"))
        else:
            help_obj = help_obj.model_copy()
            if not help_obj.en_US and "en_US" in t_help:
                help_obj.en_US = t_help["en_US"]
            if not help_obj.zh_Hans:
                help_obj.zh_Hans = t_help.get("zh_Hans", t_help["en_US"])
            updates["help"] = help_obj
    return rule.model_copy(update=updates)
