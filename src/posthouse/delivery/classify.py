"""One classifier for every failure: SMTP replies, inbound DSNs and our own errors.

The rules are data (``bounce_rules.toml``, loaded and compiled once); docs/bounces.md
describes the classes, their subclasses and how they map to seed 004's bounce_type and
bounce_subtype. Only the class ``hard`` says anything about the recipient: it alone
suppresses and counts toward the bounce rate (events.service, protections.reputation).
"""

import re
import tomllib
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from importlib.resources import files
from typing import Any


class BounceClass(StrEnum):
    HARD = "hard"  # the address does not exist or the domain cannot receive
    SOFT = "soft"  # mailbox full, too large, temporary trouble at the receiver
    BLOCK = "block"  # the sending IP or domain is blocked, or its reputation refused
    AUTH = "auth"  # SPF, DKIM, DMARC or reverse DNS failed
    CONTENT = "content"  # the message itself was refused (spam, virus, attachment)
    INFRASTRUCTURE = "infrastructure"  # our side failed: DNS, TLS, connection, relay login
    UNKNOWN = "unknown"  # a permanent refusal nothing here recognises


# Seed 004's (and SES's) bounce types.
PERMANENT = "Permanent"
TRANSIENT = "Transient"
UNDETERMINED = "Undetermined"


@dataclass(frozen=True)
class Verdict:
    klass: BounceClass
    subclass: str
    bounce_type: str
    bounce_subtype: str
    rule: str  # the rule that decided, for the docs and the tests

    @property
    def suppresses(self) -> bool:
        return self.klass == BounceClass.HARD

    def event_data(self) -> dict[str, str]:
        return {
            "class": str(self.klass),
            "subclass": self.subclass,
            "bounce_type": self.bounce_type,
            "bounce_subtype": self.bounce_subtype,
        }

    def expired(self) -> "Verdict":
        """The same failure once retries ran out: a transient failure of this copy, never
        a verdict on the recipient."""
        return Verdict(self.klass, self.subclass, TRANSIENT, self.bounce_subtype, self.rule)


@dataclass(frozen=True)
class _Rule:
    id: str
    subclass: str
    pattern: re.Pattern[str] | None = None
    codes: frozenset[int] = frozenset()
    refine: bool = False


@dataclass(frozen=True)
class Rules:
    subclasses: dict[str, tuple[BounceClass, str]]  # subclass -> (class, bounce_subtype)
    codes: list[_Rule]
    statuses: list[_Rule]
    phrases: list[_Rule]
    examples: dict[str, str]  # rule id -> the reply it was written for


# An enhanced status code (RFC 3463), not part of an IP address or a version number.
ENHANCED_STATUS = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
# "550 5.1.1 ...", "550-5.1.1 ...", "smtp; 550 ..." (a DSN's Diagnostic-Code).
_LEADING_CODE = re.compile(r"^\s*(?:smtp\s*;\s*)?([2-5]\d\d)(?:[ \-]|$)", re.IGNORECASE)


@cache
def rules() -> Rules:
    data: dict[str, Any] = tomllib.loads(
        files("posthouse.delivery").joinpath("bounce_rules.toml").read_text(encoding="utf-8")
    )
    subclasses = {
        name: (BounceClass(entry["class"]), entry["bounce_subtype"])
        for name, entry in data["subclasses"].items()
    }

    def rule(entry: dict[str, Any], pattern: str | None) -> _Rule:
        if entry["subclass"] not in subclasses:
            raise ValueError(f"rule {entry['id']}: unknown subclass {entry['subclass']}")
        if pattern is not None and re.search(r"\\[A-Z]", pattern):
            # Lowercasing would turn \B into \b, \S into \s...
            raise ValueError(f"rule {entry['id']}: no upper-case escapes in patterns")
        return _Rule(
            id=entry["id"],
            subclass=entry["subclass"],
            pattern=re.compile(pattern) if pattern is not None else None,
            codes=frozenset(entry.get("codes", ())),
            refine=entry.get("refine", False),
        )

    entries = [*data["code"], *data["status"], *data["phrase"]]
    return Rules(
        subclasses=subclasses,
        codes=[rule(e, None) for e in data["code"]],
        statuses=[rule(e, e["code"]) for e in data["status"]],
        # Matched against the lowercased reply: re.IGNORECASE folds every character it
        # compares, and took twice as long (bench/classify.py).
        phrases=[rule(e, e["pattern"].lower()) for e in data["phrase"]],
        examples={e["id"]: e["example"] for e in entries},
    )


def _verdict(rule_id: str, subclass: str, *, temporary: bool) -> Verdict:
    klass, subtype = rules().subclasses[subclass]
    if temporary and klass == BounceClass.HARD:
        # "Try again later" is never a verdict on the address (Gmail's 450 4.2.1).
        klass, subclass, subtype = BounceClass.SOFT, "temporary", "General"
    if klass == BounceClass.HARD:
        bounce_type = PERMANENT
    elif klass == BounceClass.UNKNOWN:
        bounce_type = UNDETERMINED
    else:
        bounce_type = TRANSIENT
    return Verdict(klass, subclass, bounce_type, subtype, rule_id)


def classify_reply(code: int | None, text: str | None) -> Verdict:
    """The class of a failure from its SMTP reply code (None: no reply, our side) and text
    (with or without an enhanced status code)."""
    text = text or ""
    table = rules()
    status = ENHANCED_STATUS.search(text)
    temporary = (code is not None and 400 <= code < 500) or (
        code is None and status is not None and status.group(1) == "4"
    )
    if code is not None:
        for rule in table.codes:
            if code in rule.codes:
                return _verdict(rule.id, rule.subclass, temporary=temporary)
    fallback: _Rule | None = None
    if status is not None:
        detail = f"{int(status.group(2))}.{int(status.group(3))}"
        for rule in table.statuses:
            assert rule.pattern is not None
            if rule.pattern.fullmatch(detail):
                if not rule.refine:
                    return _verdict(rule.id, rule.subclass, temporary=temporary)
                fallback = rule
                break
    lowered = text.lower()
    for rule in table.phrases:
        assert rule.pattern is not None
        if rule.pattern.search(lowered):
            return _verdict(rule.id, rule.subclass, temporary=temporary)
    if fallback is not None:
        return _verdict(fallback.id, fallback.subclass, temporary=temporary)
    if code is None and status is None:
        return _verdict("no-reply", "other", temporary=True)
    if temporary:
        return _verdict("4xx", "temporary", temporary=True)
    return _verdict("5xx", "unknown", temporary=False)


def split_reply(line: str) -> tuple[int | None, str]:
    """``550 5.1.1 unknown`` -> (550, ``5.1.1 unknown``); text without a code -> (None, text)."""
    match = _LEADING_CODE.match(line)
    if match is None:
        return None, line.strip()
    return int(match.group(1)), line[match.end() :].strip()


def classify_line(line: str) -> Verdict:
    """A reply as one line of text, its code first (``550 5.7.1 ...``)."""
    return classify_reply(*split_reply(line))


def classify_dsn(status: str | None, diagnostic: str | None) -> Verdict:
    """A delivery status notification's recipient line (RFC 3464): its ``Status`` and its
    ``Diagnostic-Code`` (usually the remote server's reply)."""
    code, text = split_reply(diagnostic or "")
    if status:
        # The Status field is the report's verdict, and comes first: the first enhanced
        # code in the text is the one judged.
        text = f"{status} {text}".strip()
    if code is None:
        # No server reply quoted: the Status decides permanence; a failed DSN without
        # either is a permanent failure of unknown cause.
        code = 400 if (status or "").startswith("4") else 500
    return classify_reply(code, text)
