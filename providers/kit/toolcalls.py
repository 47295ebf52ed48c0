"""Tool-call bookkeeping every protocol shares: indexes for streamed fragments, and ids in a
provider's required shape.

Callers rebuild tool calls from deltas by index, so every protocol must number calls the same
way: 0, 1, … in the order calls start, stable across the fragments of one call.

Some providers accept only their own id shape in the history (Mistral: exactly 9 characters of
``[a-zA-Z0-9]``), so a conversation begun elsewhere (``call_…``, ``toolu_…``) must have its ids
rewritten — the call and its result alike — by :class:`IdRewriter`.
"""

from __future__ import annotations

import hashlib
import re
import string
from typing import Any

_ALNUM = string.ascii_letters + string.digits
_ALNUM9 = re.compile(r"[A-Za-z0-9]{9}")


class IdRewriter:
    """Maps foreign tool-call ids to 9 alphanumeric characters, the same id to the same value.

    An id already in that shape is kept; another is derived from its hash (deterministic, so a
    replayed history gets the same ids), skipping a value another id of the request already has.
    """

    __slots__ = ("_map", "_taken")

    def __init__(self, ids: list[str]) -> None:
        self._map: dict[str, str] = {}
        self._taken = {i for i in ids if _ALNUM9.fullmatch(i)}
        for original in ids:
            self(original)

    def __call__(self, original: str) -> str:
        if _ALNUM9.fullmatch(original):
            return original
        found = self._map.get(original)
        if found is None:
            salt = 0
            while True:
                digest = hashlib.sha256(f"{salt}:{original}".encode()).digest()
                found = "".join(_ALNUM[b % len(_ALNUM)] for b in digest[:9])
                if found not in self._taken:
                    break
                salt += 1
            self._taken.add(found)
            self._map[original] = found
        return found


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
