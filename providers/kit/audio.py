"""Audio helpers shared by speech protocols: container sniffing, test audio, text splitting."""

from __future__ import annotations

import io
import re
import wave

# Bytes of audio per streamed message.
CHUNK_BYTES = 32 * 1024

# Upload container formats and their MIME types.
UPLOAD_MIME = {
    "mp3": "audio/mpeg",
    "mpeg": "audio/mpeg",
    "mpga": "audio/mpeg",
    "wav": "audio/wav",
    "ogg": "audio/ogg",
    "oga": "audio/ogg",
    "opus": "audio/ogg",
    "flac": "audio/flac",
    "webm": "audio/webm",
    "m4a": "audio/mp4",
    "mp4": "audio/mp4",
    "aac": "audio/aac",
}


def sniff_format(audio: bytes) -> str:
    """The container format from magic bytes, or "" when unknown."""
    head = audio[:16]
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:3] == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "mp3"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "webm"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        return "m4a" if brand in (b"M4A ", b"M4B ") else "mp4"
    return ""


def silent_wav(seconds: float = 0.1) -> bytes:
    """A valid tiny 16 kHz mono 16-bit PCM WAV of silence (for credential checks)."""
    rate = 16000
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x00\x00" * max(1, int(rate * seconds)))
    return buffer.getvalue()


# Sentence ends: ASCII and CJK terminators, or a newline. The terminator stays with its sentence.
_SENTENCE = re.compile(r"[^.!?。！？\n]*(?:[.!?。！？]+|\n+|$)")


def split_sentences(text: str, limit: int) -> list[str]:
    """Pieces of at most ``limit`` characters, cut at sentence ends where possible."""
    if len(text) <= limit:
        return [text]
    pieces: list[str] = []
    current = ""
    for sentence in _SENTENCE.findall(text):
        if not sentence:
            continue
        while len(sentence) > limit:  # one sentence longer than the limit: cut at a space
            cut = sentence.rfind(" ", 0, limit)
            cut = cut if cut > 0 else limit
            if current:
                pieces.append(current)
                current = ""
            pieces.append(sentence[:cut])
            sentence = sentence[cut:]
        if len(current) + len(sentence) > limit:
            pieces.append(current)
            current = sentence
        else:
            current += sentence
    if current:
        pieces.append(current)
    return [p for p in pieces if p.strip()]
