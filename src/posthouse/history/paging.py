"""Opaque continuation tokens: a keyset position, signed and bound to its query.

A token is ``base64url(json) . base64url(hmac)``; the JSON holds the position and a
digest of the filters it was made for. Tampered, or presented with other filters, it is
refused (``ContinuationTokenInvalid``) before any query runs."""

import base64
import hashlib
import hmac
import json
from typing import Any

from posthouse.errors import ContinuationTokenInvalid


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Tokens:
    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(b"posthouse history paging\x00" + secret.encode()).digest()

    def _mac(self, body: bytes) -> str:
        return _b64(hmac.new(self._key, body, hashlib.sha256).digest()[:18])

    def encode(self, query: str, position: list[Any]) -> str:
        body = json.dumps({"q": _digest(query), "p": position}, separators=(",", ":")).encode()
        return f"{_b64(body)}.{self._mac(body)}"

    def decode(self, query: str, token: str) -> list[Any]:
        try:
            encoded, mac = token.split(".")
            body = _unb64(encoded)
        except ValueError:
            raise ContinuationTokenInvalid("invalid continuation_token") from None
        if not hmac.compare_digest(mac, self._mac(body)):
            raise ContinuationTokenInvalid("invalid continuation_token")
        content = json.loads(body)
        if content.get("q") != _digest(query):
            raise ContinuationTokenInvalid("continuation_token belongs to another query")
        position = content.get("p")
        if not isinstance(position, list):
            raise ContinuationTokenInvalid("invalid continuation_token")
        return position


def _digest(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()[:22]
