"""Public identifiers: a message's UUID (a ULID) shown as ``ema_<ULID>``."""

import uuid

from ulid import ULID

MESSAGE_PREFIX = "ema_"


def reference_id(message_id: uuid.UUID) -> str:
    return MESSAGE_PREFIX + str(ULID.from_uuid(message_id))


def parse_reference_id(value: str) -> uuid.UUID | None:
    """The UUID behind ``ema_<ULID>``, or None when the text is not one."""
    if not value.startswith(MESSAGE_PREFIX) or len(value) != len(MESSAGE_PREFIX) + 26:
        return None
    try:
        return ULID.from_str(value[len(MESSAGE_PREFIX) :].upper()).to_uuid()
    except ValueError:
        return None
