"""Dify's parameter-rule templates and the two ways Dify merges them into a rule.

A model YAML can say ``use_template: max_tokens`` instead of spelling out label, help, type,
range and precision. The table below has Dify's eight templates (names, types and numbers as in
v0.15.3 ``entities/defaults.py``; the help texts are our own wording).

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
            "en_US": "Sampling randomness. Low values give focused, repeatable answers;"
            " high values give more varied ones.",
            "zh_Hans": "采样的随机程度。数值越低，回答越集中、越可复现；数值越高，回答越多样。",
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
            "en_US": "Nucleus sampling: only the most likely tokens whose probabilities add up to"
            " this value are considered.",
            "zh_Hans": "核采样：只在累计概率达到该值的最可能的词元中进行选择。",
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
            "en_US": "At each step, choose only among the k most likely tokens.",
            "zh_Hans": "每一步只在概率最高的 k 个词元中进行选择。",
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
            "en_US": "Penalises tokens that have already appeared, nudging the model towards new topics.",
            "zh_Hans": "对已经出现过的词元施加惩罚，使模型更倾向于谈论新的内容。",
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
            "en_US": "Penalises tokens in proportion to how often they already appear, reducing repetition.",
            "zh_Hans": "按词元已出现的次数施加惩罚，以减少重复。",
        },
        "required": False,
        "default": 0.0,
        "min": 0.0,
        "max": 1.0,
        "precision": 2,
    },
    "max_tokens": {
        "label": {"en_US": "Max Tokens", "zh_Hans": "最大 Token 数"},
        "type": "int",
        "help": {
            "en_US": "Upper limit on the number of tokens generated. Raise it if answers are cut off.",
            "zh_Hans": "生成内容的最大 Token 数。如果回答被截断，可以调大该值。",
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
            "en_US": "Ask the model to answer with a single code block in this format, such as JSON or XML.",
            "zh_Hans": "要求模型以该格式（如 JSON、XML）的代码块作答。",
        },
        "required": False,
        "options": ["JSON", "XML"],
    },
    "json_schema": {
        "label": {"en_US": "JSON Schema", "zh_Hans": "JSON Schema"},
        "type": "text",
        "help": {
            "en_US": "A JSON schema the model's answer must follow.",
            "zh_Hans": "模型的回答必须遵循的 JSON Schema。",
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
