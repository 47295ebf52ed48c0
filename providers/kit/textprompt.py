"""Chat messages → one text prompt, for text-completion APIs (Replicate predictions, Hugging Face TGI).

Both APIs take a single string, so a conversation is written out the way Dify's Replicate and
Hugging Face providers write it (``_convert_messages_to_prompt``), the "Human/Assistant" layout::

    <system text>

    Human: <user text>

    Assistant: <assistant text>

    Human: <user text>

    Assistant:

Rules:

* a conversation that is one user message (plus system text the API takes separately) is sent as
  the bare user text, exactly what Dify sends; instruction-tuned models then apply their *own*
  chat template to it (Replicate's ``prompt_template`` input does this server-side);
* system and developer messages are joined with a blank line; an API with its own system input
  (Replicate's ``system_prompt``) gets them there, otherwise they head the prompt;
* a conversation ending with a user turn ends with ``"\\n\\nAssistant:"`` so the model answers; one
  ending with an assistant turn is continued (a prefill);
* text only: tools, tool calls, tool results and media are refused (InvokeBadRequestError naming
  the field), since neither API has them.

:class:`StopScanner` cuts streamed text at the first stop word, holding back the few characters
that could be the start of one, because these APIs either ignore stop words or include them.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.adapter import LLMRequest
from engine.errors import bad_request
from engine.messages import PartKind, PromptMessage, Role
from engine.tokenizers import count_text

HUMAN = "Human"
ASSISTANT = "Assistant"


@dataclass(slots=True)
class TextPrompt:
    system: str  # system text the API takes separately ("" when folded into the prompt)
    prompt: str


def reject_tools(request: LLMRequest) -> None:
    if request.tools:
        raise bad_request("tools", "this model takes a text prompt and does not support tools (no tool-call feature)")


def _text(message: PromptMessage, i: int) -> str:
    for j, part in enumerate(message.content):
        if part.kind is not PartKind.TEXT:
            raise bad_request(f"messages[{i}].content[{j}]", f"this model accepts text only, not {part.kind.value}")
    return message.text()


def render(messages: list[PromptMessage], *, separate_system: bool) -> TextPrompt:
    """The prompt text (and the separate system text when ``separate_system``)."""
    system: list[str] = []
    turns: list[tuple[str, str]] = []
    for i, message in enumerate(messages):
        if message.role is Role.TOOL:
            raise bad_request(f"messages[{i}]", "tool results are not supported by this model")
        if message.tool_calls:
            raise bad_request(f"messages[{i}].tool_calls", "tool calls are not supported by this model")
        text = _text(message, i)
        if message.role in (Role.SYSTEM, Role.DEVELOPER):
            if text:
                system.append(text)
        elif message.role is Role.ASSISTANT:
            turns.append((ASSISTANT, text))
        else:
            turns.append((HUMAN, text))
    if not any(role == HUMAN for role, _ in turns):
        raise bad_request("messages", "needs at least one user message")
    system_text = "\n\n".join(system)
    if len(turns) == 1 and (separate_system or not system_text):
        return TextPrompt(system_text, turns[0][1])
    head = "" if separate_system else system_text
    body = "".join(f"\n\n{role}: {text}" for role, text in turns)
    prompt = (head + body).lstrip("\n").rstrip()
    if turns[-1][0] == HUMAN:
        prompt += f"\n\n{ASSISTANT}:"
    return TextPrompt(system_text if separate_system else "", prompt)


def count_prompt_tokens(messages: list[PromptMessage]) -> int:
    """Local count over the rendered prompt (Dify counts these providers with GPT-2 the same way)."""
    if not messages:
        return 0
    try:
        rendered = render(messages, separate_system=False)
    except Exception:  # noqa: BLE001 - a count of a prompt we would refuse: count the raw text
        return sum(count_text(m.text()) for m in messages)
    return count_text(rendered.prompt)


class StopScanner:
    """Feeds text pieces; returns what is safe to emit, and notices the first stop word."""

    __slots__ = ("_held", "_keep", "stop", "stopped")

    def __init__(self, stop: list[str]) -> None:
        self.stop = [s for s in stop if s]
        self._keep = max((len(s) for s in self.stop), default=1) - 1
        self._held = ""
        self.stopped = False

    def feed(self, piece: str) -> str:
        if self.stopped:
            return ""
        if not self.stop:
            return piece
        text = self._held + piece
        cut = min((p for p in (text.find(s) for s in self.stop) if p >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            self._held = ""
            return text[:cut]
        # Hold back a tail that could still grow into a stop word.
        safe = len(text)
        for n in range(min(self._keep, len(text)), 0, -1):
            tail = text[-n:]
            if any(s.startswith(tail) for s in self.stop):
                safe = len(text) - n
                break
        self._held = text[safe:]
        return text[:safe]

    def flush(self) -> str:
        held, self._held = self._held, ""
        return "" if self.stopped else held
