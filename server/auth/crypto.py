"""Stored provider credentials encrypted at rest: AES-256-GCM with key ids and rotation.

Keys come from the environment (``auth.encryption_keys_env``, default
``MODEL_RUNTIME_ENCRYPTION_KEYS``) or a file (``auth.encryption_keys_file``), never from the database:
``"k2:<base64 32 bytes>,k1:<base64 32 bytes>"``. The first key encrypts; every listed key decrypts, so
rotating is: put a new key first, keep the old one, run ``credentials reencrypt`` (or the admin RPC),
then drop the old key.

A ciphertext is ``<key id>:<base64(12-byte random nonce || AES-GCM output)>``; the associated data
binds it to its credential name and provider, so a row copied under another name does not decrypt.
A decryption failure raises :class:`CredentialsUnreadable` (never falls back to using the stored
bytes as a secret: Dify once sent ciphertext to the provider as the API key).
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from pathlib import Path

import orjson


class KeyringError(ValueError):
    """The encryption key configuration is missing or malformed (message names no key material)."""


class CredentialsUnreadable(Exception):
    """A stored credential could not be decrypted with any configured key."""

    def __init__(self, message: str, name: str) -> None:
        super().__init__(message)
        self.name = name


def generate_key_spec(key_id: str = "") -> str:
    return f"{key_id or 'k' + secrets.token_hex(3)}:{base64.b64encode(secrets.token_bytes(32)).decode()}"


class Keyring:
    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        if not keys:
            raise KeyringError("no encryption keys")
        # Imported here: cryptography adds ~9 MB to every server, and only a keyring needs it.
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self.active_id = keys[0][0]
        self._ciphers: dict[str, AESGCM] = {kid: AESGCM(key) for kid, key in keys}

    @property
    def key_ids(self) -> list[str]:
        return list(self._ciphers)

    @classmethod
    def parse(cls, spec: str) -> Keyring:
        keys: list[tuple[str, bytes]] = []
        for part in spec.replace("\n", ",").split(","):
            part = part.strip()
            if not part or part.startswith("#"):
                continue
            kid, sep, encoded = part.partition(":")
            if not sep or not kid or ":" in encoded:
                raise KeyringError("each encryption key must be written '<id>:<base64 of 32 bytes>'")
            try:
                key = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                raise KeyringError(f"encryption key '{kid}' is not valid base64") from None
            if len(key) != 32:
                raise KeyringError(f"encryption key '{kid}' must be 32 bytes (AES-256), got {len(key)}")
            if any(kid == k for k, _ in keys):
                raise KeyringError(f"encryption key id '{kid}' appears twice")
            keys.append((kid, key))
        return cls(keys)

    @classmethod
    def from_config(cls, env_name: str, file: str) -> Keyring | None:
        """The configured keyring, or None when neither the variable nor the file is set."""
        spec = os.environ.get(env_name, "") if env_name else ""
        if not spec and file:
            try:
                spec = Path(file).read_text()
            except OSError as exc:
                raise KeyringError(f"cannot read auth.encryption_keys_file: {exc.strerror}") from None
        return cls.parse(spec) if spec.strip() else None

    def encrypt(self, data: dict, name: str, provider: str) -> tuple[str, str]:
        """(ciphertext, key id) of ``data`` under the active key."""
        nonce = os.urandom(12)
        sealed = self._ciphers[self.active_id].encrypt(nonce, orjson.dumps(data), _aad(name, provider))
        return f"{self.active_id}:{base64.b64encode(nonce + sealed).decode()}", self.active_id

    def decrypt(self, ciphertext: str, name: str, provider: str) -> dict:
        kid, _, encoded = ciphertext.partition(":")
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise CredentialsUnreadable(f"stored credentials '{name}' use encryption key '{kid}', "
                                        "which is not configured", name)
        from cryptography.exceptions import InvalidTag

        try:
            raw = base64.b64decode(encoded)
            return orjson.loads(cipher.decrypt(raw[:12], raw[12:], _aad(name, provider)))
        except (InvalidTag, binascii.Error, ValueError, orjson.JSONDecodeError):
            raise CredentialsUnreadable(f"stored credentials '{name}' do not decrypt with key '{kid}'", name) from None


def _aad(name: str, provider: str) -> bytes:
    return f"modelruntime/credentials/{provider}/{name}".encode()
