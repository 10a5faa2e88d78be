"""The envelope sender (Return-Path) of a delivery: a signed VERP address.

A delivery sent from a domain posthouse knows goes out as
``b-<delivery ULID>-<mac>@<return-path domain>``; bounces come back to that address and
name the delivery. The mac is an HMAC of the delivery id under the secret key, so a
forged bounce cannot name someone else's delivery. Without a known domain the envelope
sender is the From address, and bounces are matched from the report's content instead.
"""

import base64
import hashlib
import hmac
import re
import uuid

from ulid import ULID

from posthouse.db.models import Message

_PREFIX = "b-"
_MAC_LENGTH = 10
# Lower case throughout: some relays fold the local part's case.
_VERP = re.compile(r"^b-([0-9a-hjkmnp-tv-z]{26})-([a-z2-7]{10})@", re.IGNORECASE)


def _mac(delivery_id: uuid.UUID, secret: str) -> str:
    digest = hmac.new(secret.encode(), b"verp:" + delivery_id.bytes, hashlib.sha256).digest()
    return base64.b32encode(digest).decode("ascii").lower()[:_MAC_LENGTH]


def verp_address(delivery_id: uuid.UUID, *, return_path_domain: str, secret: str) -> str:
    ulid = str(ULID.from_uuid(delivery_id)).lower()
    return f"{_PREFIX}{ulid}-{_mac(delivery_id, secret)}@{return_path_domain}"


def looks_like_verp(address: str) -> bool:
    """Shaped like one of our VERP addresses, whether or not its mac is right."""
    return _VERP.match(address.strip().strip("<>")) is not None


def parse_verp(address: str, *, secret: str) -> uuid.UUID | None:
    """The delivery a VERP address names, or None when it is not one or its mac is wrong."""
    match = _VERP.match(address.strip().strip("<>"))
    if match is None:
        return None
    try:
        delivery_id = ULID.from_str(match.group(1).upper()).to_uuid()
    except ValueError:
        return None
    if not hmac.compare_digest(_mac(delivery_id, secret), match.group(2).lower()):
        return None
    return delivery_id


def envelope_sender(
    message: Message,
    *,
    delivery_id: uuid.UUID,
    return_path_domain: str | None,
    secret: str,
) -> str:
    if return_path_domain is None:
        return message.from_email
    return verp_address(delivery_id, return_path_domain=return_path_domain, secret=secret)
