"""Pure transforms between domain requests/results and Hugging Face's text-generation and
feature-extraction payloads. No I/O here.

**Schemas** are Dify's customizable ones: an LLM is ``mode: completion`` with the rules
temperature (0.5), top_k (1-10, default 2), top_p (0.5), max_new_tokens (1-4096, default 20,
also accepting ``max_tokens``), seed and repetition_penalty; an embedding model has
``context_size: 10000``, ``max_chunks: 1``.

**Generation request** (TGI shape, also what the serverless API takes)::

    {"inputs": "<prompt>", "parameters": {"max_new_tokens", "temperature", "top_p", "top_k",
     "repetition_penalty", "seed", "stop": [...], "details": true, "return_full_text": false},
     "stream": true|false}

The prompt is rendered by :mod:`..textprompt`. TGI rejects ``temperature: 0`` and ``top_p``
outside (0, 1), so a zero temperature becomes ``do_sample: false`` (greedy) and a top_p of 0 or
1 is left out (no nucleus filter). At most 4 stop words are sent (TGI's default limit); all are
enforced locally, and the text is cut before the stop word (TGI itself keeps it).
``text2text-generation`` models run on the pipeline, which knows neither ``details`` nor
``return_full_text``, so those are not sent.

**Replies**: serverless answers a list ``[{"generated_text"}]``, TGI ``/generate`` an object
``{"generated_text", "details": {"finish_reason", "generated_tokens", ...}}``. Stream events are
``{"index", "token": {"id", "text", "logprob", "special"}, "generated_text", "details"}``; tokens
with ``special: true`` (``</s>``, ``<|eot_id|>``) are skipped; the last event carries
``generated_text`` and ``details`` (``finish_reason``, ``generated_tokens``, ``input_length``).
Finish reasons: ``length`` → length; ``eos_token`` and ``stop_sequence`` → stop.

**Embeddings**: ``{"inputs": [texts]}`` answers one vector per text (a pooled model), or per text
a matrix of token vectors (a token-level model: ``[texts][tokens][dims]``, also
``[texts][1][tokens][dims]``), which is mean-pooled over the tokens, as Dify does.
"""

from __future__ import annotations

import math
from typing import Any

from engine.entities import AIModelEntity, LLMMode, ModelType, ParameterRule, ParameterType
from engine.errors import InvokeError
from engine.messages import FinishReason
from providers.kit.customizable import embedding_schema as _embedding_schema
from providers.kit.customizable import rule, schema

TEXT_GENERATION = "text-generation"
TEXT2TEXT = "text2text-generation"
FEATURE_EXTRACTION = "feature-extraction"
LLM_TASKS = (TEXT2TEXT, TEXT_GENERATION)
FINISH_REASONS = {"length": FinishReason.LENGTH, "eos_token": FinishReason.STOP, "stop_sequence": FinishReason.STOP}
MAX_STOP_WORDS = 4


def finish_reason(raw: str) -> FinishReason:
    return FINISH_REASONS.get(raw or "eos_token", FinishReason.OTHER)


# ---- schemas ---------------------------------------------------------------------------------


def _rule(name: str, kind: ParameterType, en: str, zh: str, help_en: str, help_zh: str,
          template: str | None = None, **kw: Any) -> ParameterRule:
    return rule(name, kind, (en, zh), (help_en, help_zh), template, **kw)


def llm_rules() -> list[ParameterRule]:
    f, i = ParameterType.FLOAT, ParameterType.INT
    return [
        _rule("temperature", f, "Temperature", "温度", "Sampling temperature.", "采样温度。", "temperature",
              default=0.5),
        _rule("top_k", i, "Top K", "Top K",
              "The number of highest probability vocabulary tokens to keep for top-k-filtering.",
              "保留的最高概率词汇标记的数量。", default=2, min=1, max=10, precision=0),
        _rule("top_p", f, "Top P", "Top P", "Nucleus sampling.", "核采样。", "top_p", default=0.5),
        _rule("max_new_tokens", i, "Max New Tokens", "最大新标记", "Maximum number of generated tokens.",
              "生成的标记的最大数量。", "max_tokens", default=20, min=1, max=4096, precision=0),
        _rule("seed", i, "Random sampling seed", "随机采样种子", "Random sampling seed.", "随机采样种子。", precision=0),
        _rule("repetition_penalty", f, "Repetition Penalty", "重复惩罚",
              "The parameter for repetition penalty. 1.0 means no penalty.", "重复惩罚的参数。1.0 表示没有惩罚。",
              precision=1),
    ]


def llm_schema(model: str) -> AIModelEntity:
    return schema(model, ModelType.LLM, {"mode": LLMMode.COMPLETION.value}, rules=llm_rules())


def embedding_schema(model: str) -> AIModelEntity:
    return _embedding_schema(model, context_size=10000)


# ---- generation ------------------------------------------------------------------------------


def build_body(prompt: str, params: dict[str, Any], stop: list[str], *, stream: bool, tgi_route: bool,
               task: str) -> dict[str, Any]:
    parameters: dict[str, Any] = {}
    for name, value in params.items():
        if value is None:
            continue
        if name == "temperature" and value <= 0:
            parameters["do_sample"] = False  # greedy: TGI wants a strictly positive temperature
        elif not ((name == "top_p" and not 0 < value < 1) or (name == "top_k" and value <= 0)):
            parameters[name] = value
    stops = [s for s in stop if s][:MAX_STOP_WORDS]
    if stops:
        parameters["stop"] = stops
    if task != TEXT2TEXT:
        parameters["details"] = True
        parameters["return_full_text"] = False
    body: dict[str, Any] = {"inputs": prompt, "parameters": parameters}
    if not tgi_route:
        body["stream"] = stream
    return body


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class Generation:
    """What a unary reply or a stream's final event says."""

    __slots__ = ("generated_tokens", "input_length", "raw_finish", "text")

    def __init__(self) -> None:
        self.text = ""
        self.raw_finish = ""
        self.generated_tokens: int | None = None
        self.input_length: int | None = None

    def read_details(self, details: Any) -> None:
        if isinstance(details, dict):
            self.raw_finish = str(details.get("finish_reason") or "")
            self.generated_tokens = _int(details.get("generated_tokens"))
            self.input_length = _int(details.get("input_length"))
            prefill = details.get("prefill")
            if self.input_length is None and isinstance(prefill, list) and prefill:
                self.input_length = len(prefill)


def parse_reply(body: Any) -> Generation:
    """A unary reply: ``[{"generated_text", "details"?}]`` or ``{"generated_text", "details"?}``."""
    item = body[0] if isinstance(body, list) and body else body
    if isinstance(item, str):  # a bare string (very old pipelines)
        item = {"generated_text": item}
    if not isinstance(item, dict) or not isinstance(item.get("generated_text"), str):
        raise InvokeError("Hugging Face returned a reply without generated_text")
    out = Generation()
    out.text = item["generated_text"]
    out.read_details(item.get("details"))
    return out


class StreamReader:
    """Reads TGI stream events in order; ``done`` once the final event (with details) arrived."""

    __slots__ = ("done", "final")

    def __init__(self) -> None:
        self.done = False
        self.final = Generation()

    def feed(self, obj: dict[str, Any]) -> str:
        token = obj.get("token")
        text = ""
        if isinstance(token, dict) and not token.get("special") and isinstance(token.get("text"), str):
            text = token["text"]
        if obj.get("details") is not None or obj.get("generated_text") is not None:
            self.done = True
            self.final.text = str(obj.get("generated_text") or "")
            self.final.read_details(obj.get("details"))
        return text


# ---- embeddings ------------------------------------------------------------------------------


def _depth(value: Any) -> int:
    depth = 0
    while isinstance(value, list) and value:
        depth += 1
        value = value[0]
    return depth if isinstance(value, int | float) else -1


def _mean(rows: list[Any]) -> list[float]:
    if not rows or not all(isinstance(r, list) and len(r) == len(rows[0]) for r in rows):
        raise InvokeError("Hugging Face returned token vectors of different sizes")
    try:
        return [math.fsum(float(r[k]) for r in rows) / len(rows) for k in range(len(rows[0]))]
    except (TypeError, ValueError):
        raise InvokeError("Hugging Face returned an embedding with non-numeric values") from None


def pooled_vectors(output: Any, expected: int) -> list[list[float]]:
    """One vector per text from a 1-, 2-, 3- or 4-dimensional feature-extraction reply."""
    depth = _depth(output)
    if depth == 1:
        vectors = [[float(x) for x in output]]
    elif depth == 2:
        vectors = [_mean(output)] if expected == 1 and len(output) > 1 else [[float(x) for x in v] for v in output]
    elif depth == 3:
        vectors = [_mean(tokens) for tokens in output]
    elif depth == 4 and all(isinstance(t, list) and len(t) == 1 for t in output):
        vectors = [_mean(t[0]) for t in output]
    else:
        raise InvokeError("Hugging Face returned feature-extraction output in an unknown shape")
    if len(vectors) != expected:
        raise InvokeError(f"Hugging Face returned {len(vectors)} embeddings for {expected} inputs")
    for vector in vectors:
        if not vector or any(map(math.isnan, vector)):
            raise InvokeError("Hugging Face returned an empty embedding or one containing NaN")
    return vectors
