"""Pure transforms for Triton's generate extension: prompt, request body, and output text.

No I/O here.

**Prompt.** The generate extension takes one string (``text_input``); chat templates are the
model's business, so messages are flattened with a fixed, simple template (the same for every
model, documented here and in the provider YAML):

* chat mode (``completion_type: chat``) -- one line per message, ``<Role>: <text>``, with the roles
  ``System``, ``User`` and ``Assistant`` (a developer message counts as ``System``), joined with
  ``\\n``, then a final ``\\nAssistant:`` that asks the model for the next turn::

      System: be brief
      User: hello
      Assistant:

* completion mode (``completion_type: completion``) -- the texts of the messages joined with
  ``\\n\\n`` and nothing added (a completion prompt is usually one user message).

Tools do not exist here: a request naming ``tools``, a tool message or an assistant turn with
tool calls is refused before anything is sent.

**Body.** ``{"text_input", "max_tokens", "parameters": {"stream", "max_tokens", "temperature",
"top_p", "top_k", "presence_penalty", "frequency_penalty"}}``. ``max_tokens`` goes both top-level
(TensorRT-LLM models read it as an input tensor, and Dify sends it there) and in ``parameters``
(the vLLM backend reads its sampling parameters from there); Triton passes a top-level key that
is not an input of the model on as a parameter, so either way one value arrives. Parameter values
must be scalars, so stop words cannot travel portably: they are applied here, on the output
(:class:`StopCutter`), as Dify's ``enforce_stop_tokens`` does.

**Output.** Depending on the model, each streamed ``text_output`` is either the next piece of text
(a delta: TensorRT-LLM) or the whole text so far (cumulative: older vLLM backends), and a model may
echo its prompt first (TensorRT-LLM ``exclude_input_in_output: false``). :class:`OutputTracker`
tells them apart: the stream is cumulative when the next different text starts with the previous
one and is longer; otherwise it is a delta stream. An output that starts with the prompt has the
prompt removed.
"""

from __future__ import annotations

from typing import Any

from engine.adapter import LLMRequest
from engine.entities import LLMMode
from engine.errors import bad_request
from engine.messages import FinishReason, PartKind, PromptMessage, Role

SAMPLING = ("temperature", "top_p", "top_k", "presence_penalty", "frequency_penalty")
DEFAULT_MAX_TOKENS = 512  # Dify's default when the caller sets none
_ROLE_LABEL = {Role.SYSTEM: "System", Role.DEVELOPER: "System", Role.USER: "User", Role.ASSISTANT: "Assistant"}
_FINISH = {"stop": FinishReason.STOP, "eos": FinishReason.STOP, "end_id": FinishReason.STOP,
           "length": FinishReason.LENGTH, "max_tokens": FinishReason.LENGTH}


def reject_tools(request: LLMRequest) -> None:
    if request.tools:
        raise bad_request("tools", "Triton Inference Server models do not support tool calls")


def _text(message: PromptMessage, i: int) -> str:
    if message.role is Role.TOOL:
        raise bad_request(f"messages[{i}]", "tool messages are not supported by Triton Inference Server models")
    if message.tool_calls:
        raise bad_request(f"messages[{i}].tool_calls", "tool calls are not supported by Triton Inference Server models")
    for j, part in enumerate(message.content):
        if part.kind is not PartKind.TEXT:
            raise bad_request(f"messages[{i}].content[{j}]", f"Triton models here take text only, not {part.kind.value}")
    return message.text()


def build_prompt(messages: list[PromptMessage], mode: LLMMode) -> str:
    if mode is LLMMode.COMPLETION:
        return "\n\n".join(t for t in (_text(m, i) for i, m in enumerate(messages)) if t)
    lines = [f"{_ROLE_LABEL[m.role]}: {_text(m, i)}" for i, m in enumerate(messages)]
    lines.append("Assistant:")
    return "\n".join(lines)


def build_body(prompt: str, parameters: dict[str, Any], *, stream: bool) -> dict[str, Any]:
    max_tokens = parameters.get("max_tokens")
    if max_tokens is None:
        max_tokens = DEFAULT_MAX_TOKENS
    params: dict[str, Any] = {"stream": stream, "max_tokens": max_tokens}
    for name in SAMPLING:
        value = parameters.get(name)
        if value is not None:
            params[name] = value
    return {"text_input": prompt, "max_tokens": max_tokens, "parameters": params}


def text_output(obj: dict[str, Any]) -> str | None:
    """The ``text_output`` of one response (a string, or a one-element list from some backends)."""
    value = obj.get("text_output")
    if isinstance(value, list):
        value = value[0] if value else ""
    return value if isinstance(value, str) else None


def finish_of(obj: dict[str, Any]) -> str:
    """A backend's own finish reason, when it returns one (vLLM ``return_finish_reason``)."""
    value = obj.get("finish_reason")
    if isinstance(value, list):
        value = value[0] if value else ""
    return str(value) if isinstance(value, str | int) and value not in ("", None) else ""


def finish_reason(raw: str, stopped: bool) -> FinishReason:
    if stopped or not raw:
        return FinishReason.STOP
    return _FINISH.get(raw.lower(), FinishReason.OTHER)


class OutputTracker:
    """Turns a sequence of ``text_output`` values (delta or cumulative) into new text."""

    __slots__ = ("cumulative", "emitted", "full", "previous", "prompt", "skip")

    def __init__(self, prompt: str) -> None:
        self.prompt = prompt
        self.previous: str | None = None
        self.cumulative: bool | None = None  # None until two different texts were seen
        self.full = ""  # the model's whole output so far, echo included
        self.emitted = 0
        self.skip = 0  # length of an echoed prompt at the start of the output

    def feed(self, text: str) -> str:
        if self.previous is None:
            self.full = text
            if self.prompt and text.startswith(self.prompt):
                self.skip = len(self.prompt)
        elif self.cumulative is None:
            if text == self.previous:
                return ""  # no evidence either way; a cumulative stream that did not grow
            self.cumulative = len(text) > len(self.previous) and text.startswith(self.previous)
            self.full = text if self.cumulative else self.full + text
        elif self.cumulative:
            self.full = text  # a text that diverged only adds what lies past the emitted length
        else:
            self.full += text
        self.previous = text
        start = max(self.skip, self.emitted)
        new = self.full[start:]
        self.emitted = max(self.emitted, len(self.full))
        return new

    @staticmethod
    def whole(text: str, prompt: str) -> str:
        """A unary answer: the text without an echoed prompt."""
        return text[len(prompt):] if prompt and text.startswith(prompt) else text


class StopCutter:
    """Cuts the output at the first stop word, holding back text that may begin one."""

    __slots__ = ("buffer", "hit", "hold", "stops")

    def __init__(self, stops: list[str]) -> None:
        self.stops = [s for s in stops if s]
        self.hold = max((len(s) for s in self.stops), default=1) - 1
        self.buffer = ""
        self.hit = False

    def feed(self, text: str) -> str:
        if self.hit:
            return ""
        if not self.stops:
            return text
        self.buffer += text
        found = [i for i in (self.buffer.find(s) for s in self.stops) if i >= 0]
        if found:
            out, self.buffer, self.hit = self.buffer[:min(found)], "", True
            return out
        keep = min(self.hold, len(self.buffer))
        out = self.buffer[:len(self.buffer) - keep]
        self.buffer = self.buffer[len(out):]
        return out

    def flush(self) -> str:
        out, self.buffer = ("" if self.hit else self.buffer), ""
        return out

    def cut(self, text: str) -> str:
        """A whole text at once."""
        return self.feed(text) + self.flush()
