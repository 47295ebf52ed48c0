"""Offline tiktoken encodings.

tiktoken fetches its BPE files from the network on first use. This runtime must count
tokens with no network, so the two files it needs (cl100k_base, o200k_base) ship
gz-compressed in ``_data/``. Before the first encoding is built we place them in a private
tiktoken cache directory under the names tiktoken looks for; tiktoken then loads them
itself and checks its own pinned SHA-256, so the encodings are exactly tiktoken's.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import threading
from functools import cache
from pathlib import Path

import tiktoken

_DATA = Path(__file__).parent / "_data"
_URL = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
_SHIPPED = ("cl100k_base", "o200k_base")
_lock = threading.Lock()
_seeded = False


def _cache_dir() -> Path:
    configured = os.environ.get("TIKTOKEN_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(tempfile.gettempdir(), f"model-runtime-{os.getuid()}")
    return Path(base) / "tiktoken"


def _seed_cache() -> None:
    """Write the shipped files where tiktoken's cache expects them (once per process)."""
    global _seeded
    with _lock:
        if _seeded:
            return
        directory = _cache_dir()
        directory.mkdir(parents=True, exist_ok=True)
        for name in _SHIPPED:
            key = hashlib.sha1(_URL.format(name=name).encode()).hexdigest()
            target = directory / key
            if not target.exists():
                tmp = target.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_bytes(gzip.decompress((_DATA / f"{name}.tiktoken.gz").read_bytes()))
                tmp.replace(target)
        os.environ["TIKTOKEN_CACHE_DIR"] = str(directory)
        _seeded = True


@cache
def get_encoding(name: str) -> tiktoken.Encoding:
    if name not in _SHIPPED:
        raise KeyError(f"encoding {name} is not shipped with the runtime")
    _seed_cache()
    return tiktoken.get_encoding(name)


def encoding_for_model(model: str) -> tiktoken.Encoding:
    """o200k_base for the GPT-4o/4.1/4.5/5, o-series and omni families; cl100k_base otherwise."""
    m = model.lower()
    if m.startswith(("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-4o", "gpt-oss", "omni-")):
        return get_encoding("o200k_base")
    return get_encoding("cl100k_base")


def count_text(text: str, model: str = "") -> int:
    if not text:
        return 0
    return len(encoding_for_model(model).encode(text, disallowed_special=()))
