"""Address parsing. We check every character ourselves before anything reaches MIME or SMTP:
the stdlib email package lets CR/LF through on this Python, and aiosmtplib silently
rewrites addresses it dislikes."""

import re
from dataclasses import dataclass
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email

from posthouse.errors import ValidationFailed

# C0 controls (including CR, LF, NUL, TAB), DEL, the Unicode line separators, and lone
# surrogates: JSON can spell one ("\ud800"), but no encoding can carry it into a message.
_CONTROL = re.compile("[\x00-\x1f\x7f\u2028\u2029\x85\ud800-\udfff]")
_NAME_AND_ADDRESS = re.compile(r"^(?P<name>.*?)\s*<(?P<addr>[^<>]*)>$", re.DOTALL)


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


def normalize_email(value: str) -> str:
    """Validate a bare address and return its ASCII form (IDNA domain, lower-cased)."""
    if not isinstance(value, str):
        raise ValidationFailed("email address must be a string")
    return _normalized(value)


# Pure, and the same senders and recipients come back all the time: email_validator
# costs a noticeable share of an accepted send. Refusals raise, so they are not cached.
@lru_cache(maxsize=4096)
def _normalized(value: str) -> str:
    if has_control_characters(value):
        raise ValidationFailed(f"invalid email address {value!r}: control characters")
    try:
        checked = validate_email(value, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as error:
        raise ValidationFailed(f"invalid email address {value!r}: {error}") from None
    if checked.ascii_email is None:
        raise ValidationFailed(
            f"invalid email address {value!r}: non-ASCII local parts are not supported"
        )
    local, domain = checked.ascii_email.rsplit("@", 1)
    return f"{local}@{domain.lower()}"


def parse_address(value: object, *, field: str) -> Address:
    """``addr@domain`` or ``Display Name <addr@domain>``; anything else is refused."""
    if not isinstance(value, str):
        raise ValidationFailed(f"{field}: each address must be a string", field=field)
    # Checked before stripping: strip() would silently drop a trailing CR or LF.
    if has_control_characters(value):
        raise ValidationFailed(
            f"{field}: address contains control characters (CR, LF, NUL, ...)", field=field
        )
    text = value.strip()
    if not text:
        raise ValidationFailed(f"{field}: empty email address", field=field)
    match = _NAME_AND_ADDRESS.match(text)
    name: str | None = None
    addr = text
    if match:
        name = _unquote(match["name"].strip()) or None
        addr = match["addr"].strip()
    if "<" in addr or ">" in addr or (name is not None and ("<" in name or ">" in name)):
        raise ValidationFailed(f"{field}: ambiguous address {value!r}", field=field)
    if any(sep in addr for sep in (",", ";", " ")):
        raise ValidationFailed(
            f"{field}: ambiguous address {value!r}: give one address per list entry", field=field
        )
    try:
        email = normalize_email(addr)
    except ValidationFailed as error:
        raise ValidationFailed(f"{field}: {error.detail}", field=field) from None
    return Address(email=email, name=name)


def _unquote(name: str) -> str:
    if len(name) >= 2 and name[0] == name[-1] == '"':
        return re.sub(r"\\(.)", r"\1", name[1:-1])
    return name
