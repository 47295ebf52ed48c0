"""Pure transforms between domain requests/results and Replicate prediction inputs/outputs.

No I/O here.

**Schemas.** Every Replicate model is customizable (named ``{owner}/{name}``, with the caller's
token and an optional version). Dify reads the parameter rules from the model version's OpenAPI
input schema; a schema here is built from credentials alone, without a request, so the LLM rules
are a fixed set named like the common Replicate LLM inputs (:func:`llm_rules`). At call time the
version's schema (fetched and cached by :mod:`.client`) decides what is sent:

* a rule's value goes under the first input name the model has among its aliases
  (``max_tokens`` → ``max_tokens`` | ``max_new_tokens`` | ``max_length``; ``min_tokens`` →
  ``min_new_tokens``; ``repetition_penalty`` → ``repeat_penalty``); a parameter the model does not
  take is left out (Replicate would reject or ignore it);
* the prompt is rendered by :mod:`..textprompt`; system text goes to ``system_prompt`` when the
  model has that input, else it heads the prompt;
* stop words go to ``stop_sequences`` (comma-separated) when the model has it, and are also
  enforced locally (output cut at the first stop word), as Dify does.

When the schema is unknown (an official model with no listed version) the parameters go as named.
Mode is ``chat`` for a model whose name ends in ``-chat``, else ``completion`` (Dify's rule).

**Embeddings.** Dify's rules: the first of ``text``, ``texts``, ``inputs`` in the version's input
order decides; ``text``/``inputs`` take one text per prediction, ``texts`` takes a JSON array
string (with ``batch_size: 4``, ``convert_to_numpy: false``, ``normalize_embeddings: true`` where
the model has them). Outputs ``[{"embedding": [...]}]``, ``{"embedding": [...]}``, ``[[...], ...]``
and a bare vector are all read.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from engine.adapter import LLMRequest
from engine.entities import AIModelEntity, LLMMode, ModelType, ParameterRule, ParameterType
from engine.errors import InvokeError
from engine.messages import AssistantMessage, FinishReason, LLMResult, TokenCounts
from providers.kit.customizable import embedding_schema as _embedding_schema
from providers.kit.customizable import rule as _rule
from providers.kit.customizable import schema
from providers.kit.embeddings import decode_vector
from providers.kit.textprompt import reject_tools, render

from .client import ModelInfo

ALIASES: dict[str, tuple[str, ...]] = {
    "max_tokens": ("max_tokens", "max_new_tokens", "max_length"),
    "min_tokens": ("min_tokens", "min_new_tokens"),
    "repetition_penalty": ("repetition_penalty", "repeat_penalty"),
}
TEXT_KEYS = ("text", "texts", "inputs")
TEXTS_EXTRAS = {"batch_size": 4, "convert_to_numpy": False, "normalize_embeddings": True}
EMBED_CONTEXT_SIZE = 4096


# ---- schemas ---------------------------------------------------------------------------------


def llm_rules() -> list[ParameterRule]:
    f, i = ParameterType.FLOAT, ParameterType.INT
    return [
        _rule("temperature", f, "Temperature", "Randomness of the output; 0 is near-deterministic.",
              "temperature", default=0.7, min=0, max=5),
        _rule("top_p", f, "Top P", "Sample from the smallest set of tokens whose probability adds up to p.",
              "top_p", default=0.9, min=0, max=1),
        _rule("top_k", i, "Top K", "Sample from the k most likely tokens (0 or -1 disables it).",
              "top_k", default=50, min=-1, max=1000),
        _rule("max_tokens", i, "Max Tokens", "Most tokens to generate (sent as the model's own limit input: "
              "max_tokens, max_new_tokens or max_length).", "max_tokens", default=512, min=1, max=128000),
        _rule("min_tokens", i, "Min Tokens", "Fewest tokens to generate (-1 disables it).", min=-1, max=128000),
        _rule("presence_penalty", f, "Presence Penalty", "Penalise tokens that already appeared.",
              "presence_penalty", min=-2, max=2),
        _rule("frequency_penalty", f, "Frequency Penalty", "Penalise tokens by how often they appeared.",
              "frequency_penalty", min=-2, max=2),
        _rule("repetition_penalty", f, "Repetition Penalty", "Penalty for repeated words; 1 means none.",
              min=0, max=5, precision=2),
        _rule("seed", i, "Seed", "Random seed; the same seed and input give the same output."),
    ]


def llm_schema(model: str) -> AIModelEntity:
    mode = LLMMode.CHAT if model.endswith("-chat") else LLMMode.COMPLETION
    return schema(model, ModelType.LLM, {"mode": mode.value}, rules=llm_rules())


def embedding_schema(model: str) -> AIModelEntity:
    return _embedding_schema(model, context_size=EMBED_CONTEXT_SIZE)


# ---- LLM -------------------------------------------------------------------------------------


def input_name(parameter: str, info: ModelInfo) -> str | None:
    """The model's input for a parameter rule, or None when the model does not take it."""
    if not info.known:
        return parameter
    for candidate in ALIASES.get(parameter, (parameter,)):
        if candidate in info.inputs:
            return candidate
    return None


def is_text_generation(info: ModelInfo) -> bool:
    """Dify's check: the description says "language model", or the inputs have the sampling knobs."""
    if "language model" in info.description.lower():
        return True
    return all(name in info.inputs for name in ("temperature", "top_p", "top_k"))


def build_input(info: ModelInfo, request: LLMRequest) -> dict[str, Any]:
    reject_tools(request)
    rendered = render(request.messages, separate_system="system_prompt" in info.inputs)
    inputs: dict[str, Any] = {"prompt": rendered.prompt}
    if rendered.system:
        inputs["system_prompt"] = rendered.system
    for name, value in request.parameters.items():
        if value is None:
            continue
        target = input_name(name, info)
        if target is not None and target not in ("prompt", "system_prompt"):
            inputs[target] = value
    stops = [s for s in request.stop if s and "," not in s]
    if stops and "stop_sequences" in info.inputs:
        inputs["stop_sequences"] = ",".join(stops)
    return inputs


def counts_from(prediction: dict[str, Any]) -> TokenCounts | None:
    """Replicate's LLM metrics (``input_token_count``/``output_token_count``), when it reports them."""
    metrics = prediction.get("metrics")
    if not isinstance(metrics, dict):
        return None
    prompt, completion = metrics.get("input_token_count"), metrics.get("output_token_count")
    if not isinstance(prompt, int | float) or not isinstance(completion, int | float):
        return None
    return TokenCounts(prompt_tokens=int(prompt), completion_tokens=int(completion))


def result(model: str, text: str, stopped: bool, counts: TokenCounts | None) -> LLMResult:
    return LLMResult(
        model=model, message=AssistantMessage(content=text), finish_reason=FinishReason.STOP,
        provider_finish_reason="stop_sequence" if stopped else "succeeded", counts=None if stopped else counts,
    )


# ---- embeddings ------------------------------------------------------------------------------


def text_input_key(info: ModelInfo) -> str:
    for name in info.inputs:
        if name in TEXT_KEYS:
            return name
    return ""


def embedding_inputs(key: str, texts: list[str], info: ModelInfo) -> dict[str, Any]:
    if key == "texts":
        inputs: dict[str, Any] = {"texts": orjson.dumps(texts).decode()}
        inputs.update({k: v for k, v in TEXTS_EXTRAS.items() if k in info.inputs})
        return inputs
    return {key: texts[0]}


def vectors_from(output: Any, expected: int) -> list[list[float]]:
    items = output
    if isinstance(items, dict) or (isinstance(items, list) and items and isinstance(items[0], int | float)):
        items = [items]
    if not isinstance(items, list):
        raise InvokeError("Replicate returned an embedding output in an unknown format")
    vectors = []
    for item in items:
        if isinstance(item, dict):
            item = item.get("embedding") if "embedding" in item else item.get("embeddings")
            if isinstance(item, list) and item and isinstance(item[0], list):
                item = item[0]
        vector = decode_vector(item)
        if not vector or any(map(math.isnan, vector)):
            raise InvokeError("Replicate returned an empty embedding or one containing NaN")
        vectors.append(vector)
    if len(vectors) != expected:
        raise InvokeError(f"Replicate returned {len(vectors)} embeddings for {expected} inputs")
    return vectors
