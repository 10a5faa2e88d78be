"""Signed tokens for the links posthouse puts in mail: pixel, clicks, attachments,
unsubscribe.

A token names a delivery, what it is for and (for links and attachments) a position,
and carries an HMAC-SHA256 of those under a key derived from ``POSTHOUSE_SECRET_KEY``.
Older keys (``POSTHOUSE_PREVIOUS_SECRET_KEYS``) still verify, so a key rotation never
breaks links in mail already delivered. Lower-case base32, so a token survives relays
and mail clients that fold case (the mailto unsubscribe address carries one too).
"""

import base64
import binascii
import hashlib
import hmac
import struct
import uuid
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

_MAC_BYTES = 12  # 96 bits: a forgery would take ~2^95 guesses, each a request
_PAYLOAD = struct.Struct(">c16sH")
_LENGTH = _PAYLOAD.size + _MAC_BYTES
_MAX_POSITION = 0xFFFF


class TokenKind(StrEnum):
    OPEN = "o"
    CLICK = "c"
    ATTACHMENT = "a"
    UNSUBSCRIBE = "u"


@dataclass(frozen=True)
class TokenClaims:
    kind: TokenKind
    delivery_id: uuid.UUID
    position: int


def _derive(secret: str) -> bytes:
    # A key of its own, so a tracking token never doubles as a VERP mac or the reverse.
    return hmac.new(secret.encode(), b"posthouse tracking token v1", hashlib.sha256).digest()


class TokenSigner:
    """Signs with the first key; verifies with any of them, in constant time."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        if not secrets:
            raise ValueError("at least one secret is needed")
        self._keys = tuple(_derive(secret) for secret in secrets)

    def _mac(self, key: bytes, payload: bytes) -> bytes:
        # hmac.digest: OpenSSL's one-shot HMAC, a third of the cost of hmac.new().
        return hmac.digest(key, payload, "sha256")[:_MAC_BYTES]

    def sign(self, kind: TokenKind, delivery_id: uuid.UUID, position: int = 0) -> str:
        if not 0 <= position <= _MAX_POSITION:
            raise ValueError(f"position out of range: {position}")
        payload = _PAYLOAD.pack(kind.encode("ascii"), delivery_id.bytes, position)
        raw = payload + self._mac(self._keys[0], payload)
        return base64.b32encode(raw).decode("ascii").rstrip("=").lower()

    def verify(self, token: str, kind: TokenKind) -> TokenClaims | None:
        """The claims of a genuine token of ``kind``; None for anything else."""
        if len(token) > 64 or not token.isascii():
            return None
        padded = token.upper() + "=" * (-len(token) % 8)
        try:
            raw = base64.b32decode(padded)
        except (binascii.Error, ValueError):
            return None
        # Only the canonical spelling: the last character has two spare bits, and a
        # token that differs from the one sent must not verify.
        if len(raw) != _LENGTH or base64.b32encode(raw).decode("ascii") != padded:
            return None
        payload, mac = raw[: _PAYLOAD.size], raw[_PAYLOAD.size :]
        genuine = False
        for key in self._keys:  # every key, so the time taken says nothing about which
            genuine |= hmac.compare_digest(self._mac(key, payload), mac)
        if not genuine:
            return None
        found_kind, delivery, position = _PAYLOAD.unpack(payload)
        if found_kind != kind.encode("ascii"):
            return None
        return TokenClaims(kind, uuid.UUID(bytes=delivery), position)


@lru_cache(maxsize=8)
def token_signer(secrets: tuple[str, ...]) -> TokenSigner:
    return TokenSigner(secrets)
