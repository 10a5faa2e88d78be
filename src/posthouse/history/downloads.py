"""Short-lived signed download tokens for attachments: the URL is the credential.

``base64url(attachment id + expiry) . base64url(hmac)``. A token past its expiry, or with
any byte changed, names nothing (the download answers 404)."""

import base64
import hashlib
import hmac
import struct
import time
import uuid
from collections.abc import Callable


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Downloads:
    def __init__(
        self, secret: str, *, lifetime: float, clock: Callable[[], float] = time.time
    ) -> None:
        self._key = hashlib.sha256(b"posthouse attachment download\x00" + secret.encode()).digest()
        self.lifetime = lifetime
        self._clock = clock

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()[:20]

    def sign(self, attachment_id: uuid.UUID) -> str:
        expires = int(self._clock() + self.lifetime)
        body = attachment_id.bytes + struct.pack(">Q", expires)
        return f"{_b64(body)}.{_b64(self._mac(body))}"

    def verify(self, token: str) -> uuid.UUID | None:
        try:
            encoded, mac = token.split(".")
            body = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
            given = base64.urlsafe_b64decode(mac + "=" * (-len(mac) % 4))
        except ValueError:
            return None
        if len(body) != 24 or not hmac.compare_digest(given, self._mac(body)):
            return None
        (expires,) = struct.unpack(">Q", body[16:])
        if expires < self._clock():
            return None
        return uuid.UUID(bytes=body[:16])
