"""Address parsing. We check every character ourselves before anything reaches MIME or SMTP:
the stdlib email package lets CR/LF through on this Python, and aiosmtplib silently
rewrites addresses it dislikes.

Every length is checked before any parsing, and the parsing itself is a few linear
string scans (no regular expression that backtracks), so no input can hold the event
loop: docs/addresses.md has the rules.
"""

import re
from dataclasses import dataclass
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email

from posthouse.errors import ValidationFailed

# C0 controls (including CR, LF, NUL, TAB), DEL, the Unicode line separators, and lone
# surrogates: JSON can spell one ("\ud800"), but no encoding can carry it into a message.
_CONTROL = re.compile("[\x00-\x1f\x7f\u2028\u2029\x85\ud800-\udfff]")
# Bidirectional controls: "invoice\u202efdp.txt" displays as "invoicetxt.pdf".
_BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# RFC 5322 specials: unquoted in a display name they make the address ambiguous (which
# part is the mailbox?), the CVE-2023-27043 class of parser differentials. "." is left
# out: RFC 5322's obsolete phrase syntax allows it, and "John Q. Public" is common.
_NAME_SPECIALS = frozenset('@()<>,;:\\"[]')

# RFC 5321 4.5.3.1: a path is at most 256 octets, a local part at most 64.
MAX_EMAIL = 254
MAX_LOCAL_PART = 64
# The sender's name is stored in a String(300) column; no real name comes near this.
MAX_DISPLAY_NAME = 200
# A list entry ("Name <address>") may not be longer than both together plus quoting.
MAX_ENTRY = 2 * MAX_DISPLAY_NAME + MAX_EMAIL + 8
# How much of a refused value an error message repeats.
_SHOWN = 80


@dataclass(frozen=True)
class Address:
    email: str  # ASCII: the domain in IDNA form; what goes into the envelope
    name: str | None = None

    def as_json(self) -> dict[str, str | None]:
        return {"email": self.email, "name": self.name}

    def formatted(self) -> str:
        if not self.name:
            return self.email
        if re.fullmatch(r"[\w .'-]*", self.name, re.ASCII) and not self.name.startswith(" "):
            return f"{self.name} <{self.email}>"
        escaped = self.name.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}" <{self.email}>'


def has_control_characters(value: str) -> bool:
    return _CONTROL.search(value) is not None


def has_bidi_controls(value: str) -> bool:
    return _BIDI.search(value) is not None


def shown(value: object) -> str:
    """``value`` for an error message: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 5] + "...'"


def address_key(email: str) -> str:
    """The one form every comparison of two addresses uses (suppression, duplicate
    recipients, sender binding): the whole normalised address lower-cased. Mail is
    still delivered to the address as given."""
    return email.lower()


def normalize_email(value: str) -> str:
    """Validate a bare address and return its ASCII form (IDNA domain, lower-cased)."""
    if not isinstance(value, str):
        raise ValidationFailed("email address must be a string")
    if len(value) > MAX_EMAIL:
        raise ValidationFailed(
            f"invalid email address {shown(value)}: longer than {MAX_EMAIL} characters"
        )
    return _normalized(value)


# Pure, and the same senders and recipients come back all the time: email_validator
# costs a noticeable share of an accepted send. Refusals raise, so they are not cached.
@lru_cache(maxsize=4096)
def _normalized(value: str) -> str:
    if has_control_characters(value):
        raise ValidationFailed(f"invalid email address {shown(value)}: control characters")
    try:
        checked = validate_email(value, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as error:
        raise ValidationFailed(f"invalid email address {shown(value)}: {error}") from None
    if checked.ascii_email is None:
        raise ValidationFailed(
            f"invalid email address {shown(value)}: non-ASCII local parts are not supported"
        )
    local, domain = checked.ascii_email.rsplit("@", 1)
    if len(local) > MAX_LOCAL_PART:
        raise ValidationFailed(
            f"invalid email address {shown(value)}: the part before the @ is longer "
            f"than {MAX_LOCAL_PART} characters"
        )
    return f"{local}@{domain.lower()}"


def parse_address(value: object, *, field: str) -> Address:
    """``addr@domain`` or ``Display Name <addr@domain>``; anything else is refused."""
    if not isinstance(value, str):
        raise ValidationFailed(f"{field}: each address must be a string", field=field)
    if len(value) > MAX_ENTRY:
        raise ValidationFailed(
            f"{field}: address {shown(value)} is longer than {MAX_ENTRY} characters", field=field
        )
    # Checked before stripping: strip() would silently drop a trailing CR or LF.
    if has_control_characters(value):
        raise ValidationFailed(
            f"{field}: address contains control characters (CR, LF, NUL, ...)", field=field
        )
    text = value.strip()
    if not text:
        raise ValidationFailed(f"{field}: empty email address", field=field)
    name: str | None = None
    addr = text
    if text.endswith(">"):
        opening = text.rfind("<")
        if opening < 0:
            raise ValidationFailed(f"{field}: ambiguous address {shown(value)}", field=field)
        name = display_name(text[:opening].strip(), value=value, field=field)
        addr = text[opening + 1 : -1].strip()
    if "<" in addr or ">" in addr or (name is not None and ("<" in name or ">" in name)):
        raise ValidationFailed(f"{field}: ambiguous address {shown(value)}", field=field)
    if any(sep in addr for sep in (",", ";", " ")):
        raise ValidationFailed(
            f"{field}: ambiguous address {shown(value)}: give one address per list entry",
            field=field,
        )
    try:
        email = normalize_email(addr)
    except ValidationFailed as error:
        raise ValidationFailed(f"{field}: {error.detail}", field=field) from None
    return Address(email=email, name=name)


def display_name(raw: str, *, value: str, field: str) -> str | None:
    """The name before ``<addr>``: a quoted string (any character but controls, with
    backslash escapes) or plain words without RFC 5322 specials."""
    if not raw:
        return None
    if raw[0] == '"':
        name = _unquoted(raw)
        if name is None:
            raise ValidationFailed(
                f"{field}: ambiguous display name in {shown(value)}: a quoted name must be "
                "one quoted string",
                field=field,
            )
        return name or None
    if any(c in _NAME_SPECIALS for c in raw):
        raise ValidationFailed(
            f"{field}: ambiguous display name in {shown(value)}: quote a name that contains "
            '@ ( ) < > , ; : \\ " [ or ]',
            field=field,
        )
    return raw


def _unquoted(raw: str) -> str | None:
    """The content of one quoted string spanning ``raw``, or None when it is not one."""
    out: list[str] = []
    escaped = False
    for position, char in enumerate(raw[1:], start=1):
        if escaped:
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            return "".join(out) if position == len(raw) - 1 else None
        else:
            out.append(char)
    return None
