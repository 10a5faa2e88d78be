"""Header and body encodings (RFC 2045, 2047, 2231, 5322) with the C codecs in binascii.

Callers pass values already checked for CR/LF/NUL; these functions only encode and fold.
"""

import base64
import binascii
import re
from urllib.parse import quote

MAX_LINE = 78
# RFC 2047 section 2: a header line holding an encoded word is at most 76 characters.
MAX_ENCODED_LINE = 76
_WRAPPER = len("=?utf-8?b??=")
# RFC 5322's hard limit is 998 characters a line; a longer word is sent as encoded words.
_LONGEST_WORD = 900
# RFC 5322 atext and spaces; a "." in a phrase is obsolete syntax, so such names are quoted.
_ATOM_PHRASE = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]*$")
_SIMPLE_PARAM = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e ]{1,60}$")


def is_ascii(value: str) -> bool:
    return value.isascii()


def _word_bytes(room: int) -> int:
    """The most UTF-8 bytes whose encoded word fits in ``room`` characters."""
    return max(3, (room - _WRAPPER) // 4 * 3)


def encoded_words(value: str, *, lead: int = 0) -> list[str]:
    """RFC 2047 B-encoded words, split on character boundaries, each fitting a folded line
    of 76 characters (" " + 72); the first fits after ``lead`` characters ("Subject: ")."""
    words: list[bytes] = []
    chunk = b""
    limit = _word_bytes(MAX_ENCODED_LINE - lead)
    for char in value:
        encoded = char.encode("utf-8")
        if chunk and len(chunk) + len(encoded) > limit:
            words.append(chunk)
            chunk = b""
            limit = _word_bytes(MAX_ENCODED_LINE - 1)  # 45 bytes: 60 base64 characters
        chunk += encoded
    if chunk:
        words.append(chunk)
    return ["=?utf-8?b?" + base64.b64encode(w).decode("ascii") + "?=" for w in words]


def fold(name: str, tokens: list[str]) -> str:
    """Join tokens with folding white space so lines stay within 78 characters when they
    can, 76 when the header holds encoded words."""
    lines: list[str] = []
    line = f"{name}:"
    limit = MAX_ENCODED_LINE if any(t.startswith("=?") for t in tokens) else MAX_LINE
    for token in filter(None, tokens):
        if len(line) + 1 + len(token) > limit and line != f"{name}:":
            lines.append(line)
            line = " " + token
        else:
            line += " " + token
    lines.append(line)
    return "\r\n".join(lines)


def unstructured(name: str, value: str) -> str:
    """Subject and other free-text headers."""
    if is_ascii(value) and "=?" not in value and _fits(value.split(" ")):
        return (
            fold(name, value.split(" "))
            if len(name) + len(value) + 2 > MAX_LINE
            else f"{name}: {value}"
        )
    return fold(name, encoded_words(value, lead=len(name) + 2))


def phrase(display_name: str, *, lead: int = 0) -> list[str]:
    """A display name as tokens: an atom phrase, a quoted string, or encoded words."""
    # "=?" inside a quoted string is read as an encoded word by some parsers (and flagged
    # as a defect by Python's), so such names are encoded too.
    if not is_ascii(display_name) or "=?" in display_name:
        return encoded_words(display_name, lead=lead)
    if _ATOM_PHRASE.match(display_name):
        tokens = display_name.split(" ")
    else:
        escaped = display_name.replace("\\", "\\\\").replace('"', '\\"')
        tokens = [f'"{escaped}"']
    return tokens if _fits(tokens) else encoded_words(display_name, lead=lead)


def _fits(tokens: list[str]) -> bool:
    return all(len(token) <= _LONGEST_WORD for token in tokens)


def address_list(name: str, addresses: list[tuple[str | None, str]]) -> str:
    tokens: list[str] = []
    for index, (display_name, email) in enumerate(addresses):
        separator = "," if index < len(addresses) - 1 else ""
        if display_name:
            # The first name starts the header's first line; later ones start a fresh
            # line whenever an encoded word would not fit (fold()).
            tokens.extend(phrase(display_name, lead=len(name) + 2 if not tokens else 1))
            tokens.append(f"<{email}>{separator}")
        else:
            tokens.append(f"{email}{separator}")
    return fold(name, tokens)


def parameter(name: str, value: str) -> list[str]:
    """A MIME parameter: quoted when simple ASCII, else RFC 2231 with continuations."""
    # "=?" would be taken for an encoded word inside the quotes.
    if _SIMPLE_PARAM.match(value) and "=?" not in value:
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return [f'{name}="{escaped}"']
    encoded = quote(value.encode("utf-8"), safe="")
    if len(encoded) <= 60:
        return [f"{name}*=utf-8''{encoded}"]
    # Continuations end on character boundaries: parsers decode each piece on its own.
    pieces = [""]
    for char in value:
        escaped = quote(char.encode("utf-8"), safe="")
        if pieces[-1] and len(pieces[-1]) + len(escaped) > 60:
            pieces.append("")
        pieces[-1] += escaped
    pieces[0] = "utf-8''" + pieces[0]
    return [f"{name}*{index}*={piece}" for index, piece in enumerate(pieces)]


def content_header(name: str, value: str, params: list[str]) -> str:
    tokens = [value + (";" if params else "")]
    for index, param in enumerate(params):
        tokens.append(param + (";" if index < len(params) - 1 else ""))
    return fold(name, tokens)


def quoted_printable(text: str) -> bytes:
    normal = text.replace("\r\n", "\n").replace("\r", "\n")
    encoded = binascii.b2a_qp(normal.encode("utf-8"), quotetabs=False, istext=True, header=False)
    return encoded.replace(b"\n", b"\r\n")


def base64_body(data: bytes) -> bytes:
    # One encode, then 76-character lines: base64.encodebytes encodes 57-byte chunks in
    # a Python loop, a third slower for a 20 KB attachment.
    encoded = binascii.b2a_base64(data, newline=False)
    lines = [encoded[i : i + 76] for i in range(0, len(encoded), 76)]
    return b"\r\n".join(lines) + b"\r\n" if lines else b""
