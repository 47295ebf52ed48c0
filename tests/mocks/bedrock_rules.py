"""What the Bedrock mock refuses, as Bedrock does: its ValidationException, the model families
the Converse rules depend on, and the Converse request checks (blocks, tools, reasoning replay
with signatures)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Any

_GEO = ("us.", "eu.", "apac.", "global.", "us-gov.", "jp.", "au.")


class ApiError(Exception):
    def __init__(self, status: int, type: str, message: str, body: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status, self.type, self.message, self.body = status, type, message, body or {}


def bad(message: str) -> ApiError:
    return ApiError(400, "ValidationException", message)


def model_family(model: str) -> str:
    name = model.rsplit("/", 1)[-1]
    for prefix in _GEO:
        if name.startswith(prefix):
            name = name[len(prefix):]
            break
    if name.startswith("anthropic.claude"):
        return "anthropic"
    if name.startswith("amazon.nova"):
        return "nova"
    if name.startswith(("meta.llama", "mistral.")):
        return name.split(".", 1)[0]
    if name.startswith("amazon.titan-embed"):
        return "titan"
    if name.startswith("cohere.embed"):
        return "cohere"
    return ""


# ---------------------------------------------------------------------------------- validation


_BLOCK_KEYS = {"text", "image", "document", "toolUse", "toolResult", "reasoningContent", "guardContent",
               "cachePoint"}


def sign(thinking: str) -> str:
    """The signature issued for a reasoning text; only that text with it is accepted back."""
    return "Eq" + base64.b64encode(hmac.new(b"mock-bedrock-reasoning", thinking.encode(), hashlib.sha256).digest()).decode()


def _check_reasoning(i: int, content: list[dict[str, Any]], thinking_on: bool, continues_tools: bool) -> None:
    """Reasoning blocks sent back must be as issued; with thinking on, the assistant turn a tool
    result answers must start with its reasoning (Claude's extended-thinking rule)."""
    for block in content:
        text = (block.get("reasoningContent") or {}).get("reasoningText")
        if isinstance(text, dict) and not hmac.compare_digest(str(text.get("signature")), sign(str(text.get("text")))):
            raise bad(f"messages.{i}.content: The reasoningContent signature is invalid.")
    if thinking_on and continues_tools and "reasoningContent" not in content[0]:
        raise bad(f"messages.{i}.content.0.type: Expected `thinking` or `redacted_thinking`, but found "
                  f"`{next(iter(content[0]), '')}`. When `thinking` is enabled, a final `assistant` message must "
                  "start with a thinking block (preceeding the lastmost set of `tool_use` and `tool_result` "
                  "blocks). To avoid this requirement, disable `thinking`.")


def validate_converse(body: dict[str, Any], model: str) -> None:
    family = model_family(model)
    if family not in ("anthropic", "nova", "meta", "mistral"):
        raise bad("The provided model identifier is invalid.")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad("1 validation error detected: Value at 'messages' failed to satisfy constraint: "
                  "Member must have length greater than or equal to 1")
    allowed = {"messages", "system", "inferenceConfig", "toolConfig", "additionalModelRequestFields",
               "guardrailConfig", "additionalModelResponseFieldPaths", "promptVariables", "requestMetadata",
               "performanceConfig"}
    extra_keys = set(body) - allowed
    if extra_keys:
        raise bad(f"Unexpected field: {min(extra_keys)}")
    has_tool_config = bool((body.get("toolConfig") or {}).get("tools"))
    pending: set[str] = set()
    for i, m in enumerate(messages):
        role = m.get("role")
        if role not in ("user", "assistant"):
            raise bad(f"Value at 'messages.{i + 1}.member.role' failed to satisfy constraint")
        if i == 0 and role != "user":
            raise bad("A conversation must start with a user message. Try again with a conversation that "
                      "starts with a user message.")
        if i and messages[i - 1]["role"] == role:
            raise bad("A conversation must alternate between user and assistant roles. Make sure the "
                      "conversation alternates between user and assistant roles and try again.")
        content = m.get("content")
        if not isinstance(content, list) or not content:
            raise bad(f"The content field in the Message object at messages.{i} is empty.")
        for block in content:
            keys = set(block) & _BLOCK_KEYS
            if len(block) != 1 or len(keys) != 1:
                raise bad(f"Exactly one key must be set in a ContentBlock at messages.{i}.")
            if "text" in block and not str(block["text"]).strip():
                raise bad(f"The text field in the ContentBlock object at messages.{i}.content is blank. "
                          "Add text to the text field, and try again.")
            if ("toolUse" in block or "toolResult" in block) and not has_tool_config:
                raise bad("The toolConfig field must be defined when using toolUse and toolResult content blocks.")
            if "image" in block:
                img = block["image"]
                if img.get("format") not in ("png", "jpeg", "gif", "webp") or "bytes" not in img.get("source", {}):
                    raise bad(f"Invalid image block at messages.{i}.")
            if "document" in block:
                doc = block["document"]
                if not re.fullmatch(r"[A-Za-z0-9\-()\[\]]+( [A-Za-z0-9\-()\[\]]+)*", doc.get("name") or ""):
                    raise bad(f"The document file name can only contain alphanumeric characters, whitespace "
                              f"characters, hyphens, parentheses, and square brackets (messages.{i}).")
        if role == "user":
            answered = {b["toolResult"]["toolUseId"] for b in content if "toolResult" in b}
            if pending - answered:
                ids = ", ".join(sorted(pending - answered))
                raise bad(f"Expected toolResult blocks at messages.{i}.content for the following Ids: {ids}")
            if answered - pending:
                raise bad("The number of toolResult blocks exceeds the number of toolUse blocks of the "
                          "previous turn.")
            pending = set()
        else:
            pending = {b["toolUse"]["toolUseId"] for b in content if "toolUse" in b}
            last_answers = i == len(messages) - 2 and any("toolResult" in b for b in messages[-1].get("content") or ())
            thinking_on = ((body.get("additionalModelRequestFields") or {}).get("thinking") or {}).get("type") == "enabled"
            _check_reasoning(i, content, thinking_on, last_answers)
    inference = body.get("inferenceConfig") or {}
    for key in inference:
        if key not in ("maxTokens", "temperature", "topP", "stopSequences"):
            raise bad(f"Unexpected field in inferenceConfig: {key}")
    if "maxTokens" in inference and (not isinstance(inference["maxTokens"], int) or inference["maxTokens"] < 1):
        raise bad("Value at 'inferenceConfig.maxTokens' failed to satisfy constraint: Member must have value "
                  "greater than or equal to 1")
    extra = body.get("additionalModelRequestFields") or {}
    thinking = extra.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or budget < 1024:
            raise bad("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
        if budget >= inference.get("maxTokens", 0):
            raise bad("`max_tokens` must be greater than `thinking.budget_tokens`")
        if "temperature" in inference or "topP" in inference or "top_k" in extra:
            raise bad("temperature, top_p and top_k are not supported when thinking is enabled")
    if "top_k" in extra and family == "nova":
        raise bad("Malformed input request: extraneous key [top_k] is not permitted")
    system = body.get("system") or []
    if any(not str(s.get("text", "")).strip() for s in system if "text" in s):
        raise bad("The text field in the SystemContentBlock is blank.")
