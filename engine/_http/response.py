"""The one response type adapters see, whichever transport carried the request.

Both transports (aiohttp by default, httpx for HTTP/2 and as the test seam) hand back an
object of this shape; adapters annotate with :class:`UpstreamResponse` and never import a
transport library, so swapping transports cannot break an adapter silently.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol


class UpstreamResponse(Protocol):
    """A provider's HTTP response with its body possibly unread."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...  # case-insensitive in both transports

    @property
    def content(self) -> bytes: ...  # the body once :meth:`aread` returned

    @property
    def text(self) -> str: ...

    async def aread(self) -> bytes: ...

    def aiter_bytes(self) -> AsyncIterator[bytes]: ...

    def json(self) -> Any: ...

    async def aclose(self) -> None: ...
