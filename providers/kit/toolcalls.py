"""Tool-call index assignment for streamed fragments, one place for every protocol.

Callers rebuild tool calls from deltas by index, so every protocol must number calls the same
way: 0, 1, … in the order calls start, stable across the fragments of one call.
"""

from __future__ import annotations

from typing import Any


class ToolIndexer:
    """Indexes for OpenAI-style fragments.

    OpenAI sends an ``index``; some compatible servers send none, or send whole calls, so fall
    back to "a new id starts a new call, no id continues the last one".
    """

    __slots__ = ("_by_id", "_last", "_next")

    def __init__(self) -> None:
        self._by_id: dict[str, int] = {}
        self._last = -1
        self._next = 0

    def index(self, fragment: dict[str, Any]) -> int:
        idx = fragment.get("index")
        call_id = fragment.get("id")
        if isinstance(idx, int):
            self._next = max(self._next, idx + 1)
            self._last = idx
            return idx
        if call_id and call_id not in self._by_id:
            self._by_id[call_id] = self._next
            self._last = self._next
            self._next += 1
        elif call_id:
            self._last = self._by_id[call_id]
        return max(self._last, 0)


class BlockToolIndex:
    """Indexes for protocols that number content blocks (Anthropic, Bedrock Converse): a block
    that starts a tool call gets the next tool-call index; its later deltas find it by block."""

    __slots__ = ("_by_block",)

    def __init__(self) -> None:
        self._by_block: dict[int, int] = {}

    def start(self, block: int) -> int:
        index = self._by_block[block] = len(self._by_block)
        return index

    def get(self, block: int) -> int | None:
        return self._by_block.get(block)

    def __len__(self) -> int:
        return len(self._by_block)
