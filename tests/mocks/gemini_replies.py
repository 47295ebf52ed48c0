"""Request validation and deterministic replies of the Gemini mock (see gemini_mock).

Validation mirrors what the real API rejects with 400 INVALID_ARGUMENT: unknown fields
("Invalid JSON payload received. Unknown name ..."), roles other than user/model, empty
parts, non-object function args/responses, JSON-Schema keywords outside Gemini's OpenAPI
subset ($ref, additionalProperties, default, exclusiveMinimum, ...), OBJECT schemas with an
empty properties map, and (Gemini 3) function calls replayed without their thoughtSignature.

Replies are pure functions of the request so tests can predict them:
- text: ``reply_template`` with the last user text; ``responseMimeType: application/json``
  gives a JSON object built from ``responseSchema`` (or ``{"answer": ...}``);
- with tools (mode not NONE) and a user turn last: one ``functionCall`` per declaration, at
  most two, args from :func:`expected_args`, no ids;
- after ``functionResponse`` parts: "Tool said: <the responses as JSON>";
- thinking models report ``thoughtsTokenCount`` unless the budget is 0, and send the thought
  as ``thought: true`` parts only with ``includeThoughts``;
- ``stopSequences`` cut the text; ``maxOutputTokens`` cuts it and finishes MAX_TOKENS.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import struct
from dataclasses import dataclass
from typing import Any


class ApiError(Exception):
    def __init__(self, code: int, message: str, status: str, details: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status
        self.details = details or []
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.message, "status": self.status}
        if self.details:
            err["details"] = self.details
        return {"error": err}


def invalid(message: str) -> ApiError:
    return ApiError(400, message, "INVALID_ARGUMENT")


@dataclass(frozen=True)
class ModelInfo:
    name: str
    thinking: bool = True
    embedding_dims: int = 0  # >0: an embedding model
    input_limit: int = 1048576
    output_limit: int = 65536


DEFAULT_MODELS = (
    ModelInfo("gemini-3.8-flash"), ModelInfo("gemini-3.7-flash"), ModelInfo("gemini-3.5-flash"),
    ModelInfo("gemini-3.1-pro-preview"), ModelInfo("gemini-3.1-flash-lite"), ModelInfo("gemini-2.5-pro"),
    ModelInfo("gemini-2.5-flash"), ModelInfo("gemini-2.5-flash-lite"),
    ModelInfo("gemini-2.0-flash", thinking=False, output_limit=8192),
    ModelInfo("gemini-embedding-001", thinking=False, embedding_dims=3072, input_limit=2048, output_limit=1),
)

_REQUEST_FIELDS = {"contents", "systemInstruction", "tools", "toolConfig", "generationConfig", "safetySettings",
                   "cachedContent", "model", "labels"}
_GEN_FIELDS = {"temperature", "topP", "topK", "candidateCount", "maxOutputTokens", "stopSequences",
               "presencePenalty", "frequencyPenalty", "seed", "responseMimeType", "responseSchema",
               "responseJsonSchema", "thinkingConfig", "responseLogprobs", "logprobs", "responseModalities",
               "mediaResolution"}
_THINKING_FIELDS = {"thinkingBudget", "includeThoughts", "thinkingLevel"}
_THINKING_LEVELS = {"MINIMAL", "LOW", "MEDIUM", "HIGH"}
_SCHEMA_FIELDS = {"type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems",
                  "properties", "required", "minProperties", "maxProperties", "minLength", "maxLength",
                  "pattern", "example", "anyOf", "propertyOrdering", "items", "minimum", "maximum"}
_SCHEMA_TYPES = {"STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"}
_DATA_FIELDS = ("text", "inlineData", "fileData", "functionCall", "functionResponse", "executableCode",
                "codeExecutionResult")
_PART_FIELDS = {*_DATA_FIELDS, "thought", "thoughtSignature", "videoMetadata", "mediaResolution"}
_TOKEN = re.compile(r"\w+|[^\w\s]")
TASK_TYPES = {"TASK_TYPE_UNSPECIFIED", "RETRIEVAL_QUERY", "RETRIEVAL_DOCUMENT", "SEMANTIC_SIMILARITY",
              "CLASSIFICATION", "CLUSTERING", "QUESTION_ANSWERING", "FACT_VERIFICATION", "CODE_RETRIEVAL_QUERY"}
MEDIA_TOKENS = 258


def count_tokens(text: str) -> int:
    """The mock's tokenizer: words and punctuation marks."""
    return len(_TOKEN.findall(text))


def _unknown(data: dict[str, Any], allowed: set[str], where: str) -> None:
    for key in data:
        if key not in allowed:
            at = f" at '{where}'" if where else ""
            raise invalid(f'Invalid JSON payload received. Unknown name "{key}"{at}: Cannot find field.')


# ---- validation ------------------------------------------------------------------------


def check_schema(schema: Any, where: str) -> None:
    if not isinstance(schema, dict):
        raise invalid(f"Invalid JSON payload received. Expected an object at '{where}'.")
    _unknown(schema, _SCHEMA_FIELDS, where)
    kind = schema.get("type")
    if kind is not None and (not isinstance(kind, str) or kind.upper() not in _SCHEMA_TYPES):
        raise invalid(f"Invalid value at '{where}.type' ({kind!r}), expected a Type enum value")
    props = schema.get("properties")
    if isinstance(kind, str) and kind.upper() == "OBJECT" and props is not None and not props:
        raise invalid(f"* GenerateContentRequest.{where}.properties: should be non-empty for OBJECT type")
    for name, sub in (props or {}).items():
        check_schema(sub, f"{where}.properties[{name}].value")
    if "items" in schema:
        check_schema(schema["items"], f"{where}.items")
    for i, sub in enumerate(schema.get("anyOf") or ()):
        check_schema(sub, f"{where}.any_of[{i}]")
    enum = schema.get("enum")
    if enum is not None and not all(isinstance(v, str) for v in enum):
        raise invalid(f"Invalid value at '{where}.enum': enum values must be strings")


def _check_part(part: Any, where: str, model: str, role: str) -> None:
    if not isinstance(part, dict):
        raise invalid(f"Invalid JSON payload received. Expected an object at '{where}'.")
    _unknown(part, _PART_FIELDS, where)
    data = [k for k in _DATA_FIELDS if k in part]
    if len(data) != 1:
        raise invalid(f"* GenerateContentRequest.{where}.data: required oneof field 'data' must have one initialized field")
    call = part.get("functionCall")
    if call is not None:
        if not isinstance(call, dict) or not call.get("name"):
            raise invalid(f"* GenerateContentRequest.{where}.function_call.name: Name cannot be empty.")
        if "args" in call and not isinstance(call["args"], dict):
            raise invalid(f"Invalid value at '{where}.function_call.args' (type.googleapis.com/google.protobuf.Struct)")
    response = part.get("functionResponse")
    if response is not None and (not isinstance(response, dict) or not isinstance(response.get("response"), dict)):
        raise invalid(f"Invalid value at '{where}.function_response.response' (type.googleapis.com/google.protobuf.Struct)")
    for key in ("inlineData", "fileData"):
        media = part.get(key)
        if media is not None and (not isinstance(media, dict) or not media.get("mimeType")):
            raise invalid(f"* GenerateContentRequest.{where}.{key}.mime_type: mime_type is required")
    inline = part.get("inlineData")
    if inline is not None and not isinstance(inline.get("data"), str):
        raise invalid(f"* GenerateContentRequest.{where}.inline_data.data: data is required")


PLACEHOLDERS = ("skip_thought_signature_validator", "context_engineering_is_the_way_to_go")


def check_signatures(contents: list[dict[str, Any]], model: str, issued: str) -> None:
    """Gemini 3: in the current turn (the contents after the last user text), the first
    ``functionCall`` part of each model step needs a signature; any signature sent must be one
    Gemini issued (or the documented placeholder)."""
    if not model.startswith("gemini-3"):
        return
    start = 0
    for i, content in enumerate(contents):
        if content.get("role", "user") == "user" and any("text" in p for p in content.get("parts") or ()):
            start = i + 1
    for i, content in enumerate(contents):
        if content.get("role") != "model":
            continue
        calls = [(j, p) for j, p in enumerate(content.get("parts") or ()) if "functionCall" in p]
        for j, part in enumerate(content.get("parts") or ()):
            given = part.get("thoughtSignature")
            if given is not None and given != issued and given not in PLACEHOLDERS:
                raise invalid(f"Thought signature is not valid at contents[{i}].parts[{j}].")
        if i >= start and calls and not calls[0][1].get("thoughtSignature"):
            j, part = calls[0]
            raise invalid("Function call is missing a thought_signature in functionCall parts. This is required "
                          "for tools to work correctly, and missing thought_signature may lead to degraded model "
                          f"performance. Additional data, function call `default_api:{part['functionCall']['name']}` "
                          f", position contents[{i}].parts[{j}]. Please refer to "
                          "https://ai.google.dev/gemini-api/docs/thought-signatures")


def check_generate(body: dict[str, Any], model: str) -> None:
    _unknown(body, _REQUEST_FIELDS, "")
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise invalid("* GenerateContentRequest.contents: contents is not specified")
    for i, content in enumerate(contents):
        if not isinstance(content, dict):
            raise invalid(f"Invalid JSON payload received. Expected an object at 'contents[{i}]'.")
        role = content.get("role", "user")
        if role not in ("user", "model"):
            raise invalid(f"Please use a valid role: user, model. Got: {role!r} at contents[{i}]")
        parts = content.get("parts")
        if not isinstance(parts, list) or not parts:
            raise invalid(f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty.")
        for j, part in enumerate(parts):
            _check_part(part, f"contents[{i}].parts[{j}]", model, role)
    system = body.get("systemInstruction")
    if system is not None:
        if not isinstance(system, dict) or not system.get("parts"):
            raise invalid("* GenerateContentRequest.system_instruction.parts: must not be empty")
        for j, part in enumerate(system["parts"]):
            _check_part(part, f"system_instruction.parts[{j}]", model, "user")
    for i, tool in enumerate(body.get("tools") or ()):
        for j, decl in enumerate(tool.get("functionDeclarations") or ()):
            if not decl.get("name"):
                raise invalid(f"* GenerateContentRequest.tools[{i}].function_declarations[{j}].name: Name cannot be empty.")
            if "parameters" in decl:
                check_schema(decl["parameters"], f"tools[{i}].function_declarations[{j}].parameters")
    mode = ((body.get("toolConfig") or {}).get("functionCallingConfig") or {}).get("mode", "AUTO")
    if mode not in ("AUTO", "ANY", "NONE", "VALIDATED", "MODE_UNSPECIFIED"):
        raise invalid(f"Invalid value at 'tool_config.function_calling_config.mode' ({mode!r})")
    config = body.get("generationConfig") or {}
    _unknown(config, _GEN_FIELDS, "generation_config")
    thinking = config.get("thinkingConfig")
    if thinking is not None:
        _unknown(thinking, _THINKING_FIELDS, "generation_config.thinking_config")
        level = thinking.get("thinkingLevel")
        if level is not None and str(level).upper() not in _THINKING_LEVELS:
            raise invalid(f"Invalid value at 'generation_config.thinking_config.thinking_level' ({level!r})")
    if "responseSchema" in config:
        check_schema(config["responseSchema"], "generation_config.response_schema")


# ---- replies ---------------------------------------------------------------------------


def _value_for(schema: dict[str, Any], text: str) -> Any:
    kind = str(schema.get("type") or "STRING").upper()
    if schema.get("enum"):
        return schema["enum"][0]
    if kind == "INTEGER":
        return 1
    if kind == "NUMBER":
        return 1.5
    if kind == "BOOLEAN":
        return True
    if kind == "ARRAY":
        return []
    if kind == "OBJECT":
        return {k: _value_for(v, text) for k, v in (schema.get("properties") or {}).items()}
    return text


def expected_args(parameters: dict[str, Any] | None, text: str) -> dict[str, Any]:
    """The args the mock puts in a functionCall for a declaration with these parameters."""
    return _value_for({"type": "OBJECT", **(parameters or {})}, text) if parameters else {}


def _texts(parts: list[dict[str, Any]]) -> list[str]:
    return [p["text"] for p in parts if isinstance(p.get("text"), str) and not p.get("thought")]


def prompt_tokens(body: dict[str, Any]) -> int:
    total = 0
    sources = list(body.get("contents") or [])
    if body.get("systemInstruction"):
        sources.append(body["systemInstruction"])
    for content in sources:
        for part in content.get("parts") or ():
            if isinstance(part.get("text"), str):
                total += count_tokens(part["text"])
            elif "inlineData" in part or "fileData" in part:
                total += MEDIA_TOKENS
            else:
                total += count_tokens(json.dumps(part, sort_keys=True))
    for tool in body.get("tools") or ():
        total += count_tokens(json.dumps(tool, sort_keys=True))
    return total


@dataclass
class Reply:
    text: str = ""
    thought: str = ""
    calls: list[dict[str, Any]] | None = None
    finish: str = "STOP"
    prompt_tokens: int = 0
    thoughts_tokens: int = 0
    text_signature: str = ""

    @property
    def candidates_tokens(self) -> int:
        calls = sum(count_tokens(json.dumps(c)) for c in self.calls or ())
        return count_tokens(self.text) + calls

    def usage(self, candidates_tokens: int | None = None) -> dict[str, Any]:
        cand = self.candidates_tokens if candidates_tokens is None else candidates_tokens
        out: dict[str, Any] = {"promptTokenCount": self.prompt_tokens, "candidatesTokenCount": cand,
                               "totalTokenCount": self.prompt_tokens + cand + self.thoughts_tokens,
                               "promptTokensDetails": [{"modality": "TEXT", "tokenCount": self.prompt_tokens}]}
        if self.thoughts_tokens:
            out["thoughtsTokenCount"] = self.thoughts_tokens
        return out


def make_reply(body: dict[str, Any], info: ModelInfo, template: str, signature: str | None) -> Reply:
    contents = body.get("contents") or []
    last = contents[-1] if contents else {"parts": []}
    parts = last.get("parts") or []
    user_text = " ".join(_texts(parts))
    config = body.get("generationConfig") or {}
    reply = Reply(prompt_tokens=prompt_tokens(body))
    responses = [p["functionResponse"] for p in parts if "functionResponse" in p]
    tool_cfg = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
    declarations = [d for t in body.get("tools") or () for d in t.get("functionDeclarations") or ()]
    allowed = tool_cfg.get("allowedFunctionNames")
    if allowed:
        declarations = [d for d in declarations if d["name"] in allowed]
    if responses:
        reply.text = "Tool said: " + json.dumps([r["response"] for r in responses], sort_keys=True)
    elif declarations and tool_cfg.get("mode", "AUTO") != "NONE":
        reply.calls = [{"name": d["name"], "args": expected_args(d.get("parameters"), user_text)}
                       for d in declarations[:2]]
    elif config.get("responseMimeType") == "application/json":
        schema = config.get("responseSchema")
        value = _value_for(schema, user_text) if isinstance(schema, dict) else {"answer": user_text}
        reply.text = json.dumps(value)
    else:
        reply.text = template.format(text=user_text)
    for stop in config.get("stopSequences") or ():
        if stop and stop in reply.text:
            reply.text = reply.text[:reply.text.index(stop)]
    limit = config.get("maxOutputTokens")
    if limit is not None and reply.text and count_tokens(reply.text) > int(limit):
        words = reply.text.split(" ")
        while len(words) > 1 and count_tokens(" ".join(words)) > int(limit):
            words.pop()
        reply.text, reply.finish = " ".join(words), "MAX_TOKENS"
    thinking = config.get("thinkingConfig") or {}
    if info.thinking and thinking.get("thinkingBudget") != 0:
        thought = f"Thinking about: {user_text or 'the request'}"
        reply.thoughts_tokens = count_tokens(thought)
        if thinking.get("includeThoughts"):
            reply.thought = thought
    if reply.calls and signature is not None:  # parallel calls: only the first is signed
        reply.calls[0]["thoughtSignature"] = signature
    elif signature is not None:
        reply.text_signature = signature  # Gemini 3 signs the last part of a reply without calls
    return reply


def candidate_parts(reply: Reply) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    if reply.thought:
        parts.append({"text": reply.thought, "thought": True})
    if reply.text:
        parts.append({"text": reply.text})
        if reply.text_signature:
            parts[-1]["thoughtSignature"] = reply.text_signature
    for call in reply.calls or ():
        part: dict[str, Any] = {"functionCall": {"name": call["name"], "args": call["args"]}}
        if call.get("thoughtSignature"):
            part["thoughtSignature"] = call["thoughtSignature"]
        parts.append(part)
    return parts


# ---- embeddings ------------------------------------------------------------------------


def expected_embedding(text: str, task_type: str = "", dims: int = 3072, full_dims: int = 3072) -> list[float]:
    """Deterministic vector; unit length only at the full size (as Gemini: reduced
    outputDimensionality vectors are truncations and are not normalised)."""
    seed = hashlib.sha256(f"{task_type}\x00{text}".encode()).digest()
    values: list[float] = []
    counter = 0
    while len(values) < full_dims:
        block = hashlib.sha256(seed + counter.to_bytes(4, "big")).digest()
        values.extend((v / 2**31) - 1.0 for v in struct.unpack(">8I", block))
        counter += 1
    values = values[:full_dims]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    values = [round(v / norm, 7) for v in values]
    return values[:dims]
