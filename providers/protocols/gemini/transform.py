"""Pure transforms between domain LLM requests/results and Gemini's generateContent format.

Request (``build_body``):

- system (and developer) text → ``systemInstruction``; the rest → ``contents`` with roles
  ``user``/``model``; consecutive turns of one role are merged, so the answers to parallel
  calls travel together as one user turn of ``functionResponse`` parts;
- media → ``inlineData`` (bytes or ``data:`` URLs) or ``fileData`` (other URLs);
- assistant tool calls → ``functionCall`` parts with OBJECT args (our JSON text, parsed);
- tool results → ``functionResponse`` named after the matching call; the response must be
  an object, so anything else is wrapped as ``{"content": ...}``;
- tools → ``functionDeclarations`` with schemas cut down to Gemini's subset (:mod:`.schema`);
- parameters → ``generationConfig`` (``max_output_tokens`` or the ``max_tokens`` alias →
  ``maxOutputTokens``; ``json_schema`` → ``responseMimeType``/``responseSchema``;
  ``include_thoughts``/``thinking_budget``/``thinking_level`` → ``thinkingConfig``).

Response (``parse_response`` and the stream helpers in :mod:`.chat`):

- ``thought: true`` parts are reasoning; ``functionCall`` parts become tool calls with JSON
  args and synthesised ids ``call_<n>`` (Gemini sends none);
- thought signatures (Gemini 3 rejects a follow-up whose function calls lack them): on a
  ``functionCall`` part it is the call's provider state, on a text part the turn's, on a thought
  part that reasoning part's signature, all tagged ``gemini``. They go back on the same kind of
  part. A call with no Gemini signature (history from another provider, or a client of the
  old contract) gets the documented placeholder, for Gemini 3 models only, on the first call of
  its turn; a signature carried in the id after ``~`` (the old contract) is still honoured;
- SAFETY/RECITATION/BLOCKLIST/PROHIBITED_CONTENT/SPII finishes and a blocked prompt (no
  candidates, ``promptFeedback.blockReason``) are ``content_filter`` — data, not errors;
- ``usageMetadata``: thoughts count as completion tokens (they are billed as output).
"""

from __future__ import annotations

import base64
import mimetypes
import re
from typing import Any

import orjson

from engine.adapter import LLMRequest
from engine.errors import FieldViolation, InvokeBadRequestError
from engine.messages import (
    AssistantMessage,
    ContentPart,
    FinishReason,
    LLMResult,
    PartKind,
    PromptMessage,
    ProviderState,
    ReasoningPart,
    Role,
    TokenCounts,
    Tool,
    ToolCall,
    ToolChoice,
    state_of,
)

from .schema import SchemaError, function_parameters, sanitize

_FILTERED = {
    "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION",
}
FINISH_REASONS = {"STOP": FinishReason.STOP, "MAX_TOKENS": FinishReason.LENGTH,
                  **{name: FinishReason.CONTENT_FILTER for name in _FILTERED}}
_SIGNATURE_SEP = "~"
ORIGIN = "gemini"  # state this protocol produced (Gemini API and Vertex)
# Gemini's documented stand-in for a function call that never had a signature.
PLACEHOLDER_SIGNATURE = "skip_thought_signature_validator"
_MAJOR = re.compile(r"gemini-(\d+)")
_THINK_PREFIX = re.compile(r"^<think>.*?</think>\s*", re.DOTALL)
_PLAIN_PARAMS = (
    ("temperature", "temperature"), ("top_p", "topP"), ("top_k", "topK"),
    ("presence_penalty", "presencePenalty"), ("frequency_penalty", "frequencyPenalty"), ("seed", "seed"),
)


def _bad(field: str, description: str) -> InvokeBadRequestError:
    return InvokeBadRequestError(f"{field}: {description}", field_violations=(FieldViolation(field, description),))


# ---- tool call ids ---------------------------------------------------------------------


def make_call_id(n: int, signature: str = "") -> str:
    """``call_<n>``; with a thought signature, ``call_<n>~<signature>``."""
    return f"call_{n}{_SIGNATURE_SEP}{signature}" if signature else f"call_{n}"


def split_call_id(call_id: str) -> tuple[str, str]:
    base, _, signature = call_id.partition(_SIGNATURE_SEP)
    return base, signature


# ---- request ---------------------------------------------------------------------------


def _mime(part: ContentPart) -> str:
    if part.mime_type:
        return part.mime_type
    guessed = mimetypes.guess_type(f"x.{part.format}")[0] if part.format else None
    if not guessed and part.url and not part.url.startswith("data:"):
        guessed = mimetypes.guess_type(part.url.split("?", 1)[0])[0]
    return guessed or {"image": "image/png", "audio": "audio/mpeg", "video": "video/mp4",
                       "document": "application/pdf"}.get(part.kind.value, "application/octet-stream")


def _media_part(part: ContentPart, field: str) -> dict[str, Any]:
    if part.data:
        return {"inlineData": {"mimeType": _mime(part), "data": base64.b64encode(part.data).decode()}}
    url = part.url
    if url.startswith("data:"):
        header, sep, payload = url.partition(",")
        if not sep or ";base64" not in header:
            raise _bad(field, "data URLs must be base64-encoded")
        mime = part.mime_type or header[5:].split(";", 1)[0] or _mime(part)
        return {"inlineData": {"mimeType": mime, "data": payload}}
    return {"fileData": {"mimeType": _mime(part), "fileUri": url}}


def _content_parts(message: PromptMessage, index: int) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(message.content):
        if part.kind is PartKind.TEXT:
            text = part.text
            if message.role is Role.ASSISTANT:
                text = _THINK_PREFIX.sub("", text, count=1)
            if text:
                parts.append({"text": text})
        else:
            parts.append(_media_part(part, f"messages[{index}].content[{j}]"))
    return parts


def _call_args(arguments: str, field: str) -> dict[str, Any]:
    if not arguments.strip():
        return {}
    try:
        args = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        raise _bad(field, "tool call arguments must be JSON") from None
    if not isinstance(args, dict):
        raise _bad(field, "tool call arguments must be a JSON object for Gemini")
    return args


def _tool_response(message: PromptMessage) -> dict[str, Any]:
    text = message.text()
    try:
        value = orjson.loads(text) if text.strip() else text
    except orjson.JSONDecodeError:
        value = text
    return value if isinstance(value, dict) else {"content": value}


def _append(contents: list[dict[str, Any]], role: str, parts: list[dict[str, Any]]) -> None:
    if not parts:
        return
    if contents and contents[-1]["role"] == role:
        contents[-1]["parts"].extend(parts)
    else:
        contents.append({"role": role, "parts": parts})


def signatures_required(model: str) -> bool:
    """Gemini 3 and later validate the signatures of the current turn's function calls."""
    found = _MAJOR.search(model)
    return found is not None and int(found.group(1)) >= 3


def _model_parts(message: PromptMessage, i: int, names: dict[str, str], placeholder: bool) -> list[dict[str, Any]]:
    """An assistant turn: its own thought parts, text (the turn's signature on the last text part),
    then the calls with their signatures."""
    parts = [{"text": r.text, "thought": True, "thoughtSignature": r.signature}
             for r in message.reasoning_from(ORIGIN) if r.signature]
    texts = _content_parts(message, i)
    turn_signature = message.state_from(ORIGIN)
    if turn_signature:
        if texts and "text" in texts[-1]:
            texts[-1]["thoughtSignature"] = turn_signature
        elif not message.tool_calls:
            texts.append({"text": "", "thoughtSignature": turn_signature})
    parts += texts
    for j, call in enumerate(message.tool_calls):
        names[call.id] = call.name
        part: dict[str, Any] = {"functionCall": {
            "name": call.name,
            "args": _call_args(call.arguments, f"messages[{i}].tool_calls[{j}].arguments"),
        }}
        signature = state_of(call, ORIGIN) or split_call_id(call.id)[1]
        if not signature and placeholder and j == 0:
            signature = PLACEHOLDER_SIGNATURE
        if signature:
            part["thoughtSignature"] = signature
        parts.append(part)
    return parts


def build_contents(messages: list[PromptMessage], placeholder: bool = False) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """``contents`` and ``systemInstruction`` (None when there is no system text). ``placeholder``:
    give unsigned calls the documented stand-in signature (Gemini 3)."""
    contents: list[dict[str, Any]] = []
    system: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool_call_id -> function name, from earlier assistant turns
    for i, message in enumerate(messages):
        role = message.role
        if role in (Role.SYSTEM, Role.DEVELOPER):
            parts = _content_parts(message, i)
            system.extend(p for p in parts if "text" in p)
            _append(contents, "user", [p for p in parts if "text" not in p])  # media cannot be system
        elif role is Role.USER:
            _append(contents, "user", _content_parts(message, i))
        elif role is Role.ASSISTANT:
            _append(contents, "model", _model_parts(message, i, names, placeholder))
        elif role is Role.TOOL:
            name = names.get(message.tool_call_id) or message.name
            if not name:
                raise _bad(f"messages[{i}].tool_call_id",
                           "matches no earlier assistant tool call (Gemini needs the function name)")
            _append(contents, "user", [{"functionResponse": {"name": name, "response": _tool_response(message)}}])
    instruction = {"parts": system} if system else None
    return contents, instruction


def tools_to_wire(tools: list[Tool]) -> list[dict[str, Any]]:
    declarations = []
    for i, tool in enumerate(tools):
        declaration: dict[str, Any] = {"name": tool.name}
        if tool.description:
            declaration["description"] = tool.description
        try:
            parameters = function_parameters(tool.parameters)
        except SchemaError as exc:
            raise _bad(f"tools[{i}].parameters", str(exc)) from None
        if parameters is not None:
            declaration["parameters"] = parameters
        declarations.append(declaration)
    return [{"functionDeclarations": declarations}]


def tool_config(choice: ToolChoice | None) -> dict[str, Any] | None:
    if choice is None:
        return None
    if choice.mode == "function":
        config: dict[str, Any] = {"mode": "ANY", "allowedFunctionNames": [choice.function_name]}
    else:
        config = {"mode": {"auto": "AUTO", "none": "NONE", "required": "ANY"}.get(choice.mode, "AUTO")}
    return {"functionCallingConfig": config}


def _response_schema(raw: Any) -> dict[str, Any]:
    field = "model_parameters.json_schema"
    try:
        schema = orjson.loads(raw) if isinstance(raw, str) else raw
    except orjson.JSONDecodeError as exc:
        raise _bad(field, f"not valid JSON: {exc}") from None
    if not isinstance(schema, dict):
        raise _bad(field, "must be a JSON object")
    # Dify's form takes {"name", "schema", "strict"} (OpenAI's wrapper) or a bare schema.
    if isinstance(schema.get("schema"), dict) and "type" not in schema:
        schema = schema["schema"]
    try:
        return sanitize(schema)
    except SchemaError as exc:
        raise _bad(field, str(exc)) from None


def generation_config(params: dict[str, Any], stop: list[str]) -> dict[str, Any]:
    params = dict(params)
    config: dict[str, Any] = {}
    for ours, theirs in _PLAIN_PARAMS:
        if params.get(ours) is not None:
            config[theirs] = params[ours]
    limit = params.get("max_output_tokens")
    if limit is None:
        limit = params.get("max_tokens")
    if limit is not None:
        config["maxOutputTokens"] = int(limit)
    if stop:
        config["stopSequences"] = list(stop)
    kind = params.get("response_format")
    schema = params.get("json_schema")
    if kind in (None, "") and schema:
        kind = "json_schema"
    if kind == "json_schema":
        if not schema:
            raise _bad("model_parameters.json_schema", "required with response_format json_schema")
        config["responseMimeType"] = "application/json"
        config["responseSchema"] = _response_schema(schema)
    elif kind in ("json_object", "JSON"):
        config["responseMimeType"] = "application/json"
    thinking: dict[str, Any] = {}
    if params.get("include_thoughts") is not None:
        thinking["includeThoughts"] = bool(params["include_thoughts"])
    if params.get("thinking_budget") is not None:
        thinking["thinkingBudget"] = int(params["thinking_budget"])
    if params.get("thinking_level"):
        thinking["thinkingLevel"] = str(params["thinking_level"]).upper()
    if thinking:
        config["thinkingConfig"] = thinking
    return config


def build_body(request: LLMRequest, model: str = "") -> dict[str, Any]:
    contents, instruction = build_contents(request.messages, signatures_required(model))
    if not contents:
        raise _bad("messages", "Gemini needs at least one non-system message")
    body: dict[str, Any] = {"contents": contents}
    if instruction is not None:
        body["systemInstruction"] = instruction
    if request.tools:
        body["tools"] = tools_to_wire(request.tools)
        config = tool_config(request.tool_choice)
        if config is not None:
            body["toolConfig"] = config
    generation = generation_config(request.parameters, request.stop)
    if generation:
        body["generationConfig"] = generation
    return body


# ---- response --------------------------------------------------------------------------


def counts_from_usage(meta: Any) -> TokenCounts | None:
    if not isinstance(meta, dict) or not meta:
        return None
    prompt = int(meta.get("promptTokenCount") or 0) + int(meta.get("toolUsePromptTokenCount") or 0)
    thoughts = int(meta.get("thoughtsTokenCount") or 0)
    completion = int(meta.get("candidatesTokenCount") or 0) + thoughts
    if not prompt and not completion and not meta.get("totalTokenCount"):
        return None
    return TokenCounts(prompt, completion, int(meta.get("cachedContentTokenCount") or 0), thoughts)


def finish_reason(raw: str, has_calls: bool) -> FinishReason:
    reason = FINISH_REASONS.get(raw, FinishReason.OTHER)
    if reason is FinishReason.STOP and has_calls:
        return FinishReason.TOOL_CALLS  # Gemini says STOP after function calls
    return reason


class Parts:
    """What one batch of response parts holds."""

    __slots__ = ("calls", "reasoning", "state", "text", "thoughts")

    def __init__(self) -> None:
        self.text = ""
        self.thoughts = ""
        self.calls: list[ToolCall] = []
        self.reasoning: list[ReasoningPart] = []  # thought parts that carry a signature
        self.state: ProviderState | None = None  # a text part's signature

    def __bool__(self) -> bool:
        return bool(self.text or self.thoughts or self.calls or self.reasoning or self.state)


class PartReader:
    """Turns response parts into text, reasoning, tool calls and signatures; numbers the calls."""

    __slots__ = ("calls",)

    def __init__(self) -> None:
        self.calls = 0

    def read(self, parts: Any) -> Parts:
        out = Parts()
        text: list[str] = []
        thoughts: list[str] = []
        for part in parts if isinstance(parts, list) else ():
            if not isinstance(part, dict):
                continue
            signature = part.get("thoughtSignature")
            signature = signature if isinstance(signature, str) else ""
            call = part.get("functionCall")
            if isinstance(call, dict):
                args = call.get("args")
                given = call.get("id")
                out.calls.append(ToolCall(
                    id=str(given) if given else make_call_id(self.calls), name=str(call.get("name") or ""),
                    arguments=orjson.dumps(args if isinstance(args, dict) else {}).decode(),
                    state=ProviderState(ORIGIN, signature) if signature else None,
                ))
                self.calls += 1
                continue
            value = part.get("text")
            value = value if isinstance(value, str) else ""
            if part.get("thought") is True:
                thoughts.append(value)
                if signature:
                    out.reasoning.append(ReasoningPart(text=value, signature=signature, origin=ORIGIN))
            else:
                text.append(value)
                if signature:
                    out.state = ProviderState(ORIGIN, signature)
        out.text, out.thoughts = "".join(text), "".join(thoughts)
        return out


def blocked_reason(body: dict[str, Any]) -> str:
    """The prompt's block reason when Gemini refused it outright (no candidates)."""
    if body.get("candidates"):
        return ""
    feedback = body.get("promptFeedback")
    return str(feedback.get("blockReason") or "") if isinstance(feedback, dict) else ""


def parse_response(body: dict[str, Any], model: str) -> LLMResult:
    message = AssistantMessage()
    counts = counts_from_usage(body.get("usageMetadata"))
    result = LLMResult(model=model, message=message, id=str(body.get("responseId") or ""),
                       system_fingerprint=str(body.get("modelVersion") or ""), counts=counts)
    blocked = blocked_reason(body)
    if blocked:
        result.finish_reason, result.provider_finish_reason = FinishReason.CONTENT_FILTER, blocked
        return result
    candidates = body.get("candidates") or [{}]
    candidate = candidates[0] if isinstance(candidates[0], dict) else {}
    given = candidate.get("content")
    content: dict[str, Any] = given if isinstance(given, dict) else {}
    parts = PartReader().read(content.get("parts"))
    message.content, message.reasoning_content, message.tool_calls = parts.text, parts.thoughts, parts.calls
    message.reasoning, message.state = parts.reasoning, parts.state
    raw = str(candidate.get("finishReason") or "STOP")
    result.finish_reason = finish_reason(raw, bool(message.tool_calls))
    result.provider_finish_reason = raw
    return result
