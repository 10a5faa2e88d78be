"""What each DNS record to publish looks like, and whether DNS shows it.

A lookup that fails temporarily (SERVFAIL, timeout) says nothing about the record: the
check returns ``verified=None`` and the caller keeps the record's previous state, so a
resolver hiccup never unverifies a domain.
"""

import ipaddress
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.resolver

from posthouse.mime.dkim import dns_value

DKIM, SPF, DMARC, RETURN_PATH = "dkim", "spf", "dmarc", "return_path"
# SPF for the name the MTA greets with (HELO/EHLO): receivers check it too (SpamAssassin
# scores SPF_HELO_NONE). One record on the mail host serves every domain, so it is
# recommended, not required for a domain to be verified.
SPF_HELO = "spf_helo"
OPTIONAL_PURPOSES = frozenset({SPF_HELO})


@dataclass(frozen=True)
class ExpectedRecord:
    purpose: str
    type: str
    name: str
    value: str


@dataclass(frozen=True)
class CheckResult:
    verified: bool | None  # None: DNS did not answer, state unknown
    detail: str


class _Unavailable(Exception):
    pass


def dkim_record(domain: str, selector: str, public_key_b64: str) -> ExpectedRecord:
    return ExpectedRecord(DKIM, "TXT", f"{selector}._domainkey.{domain}", dns_value(public_key_b64))


def _spf_mechanism(host: str) -> str:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return f"a:{host}"
    return f"ip{address.version}:{address}"


def standing_records(domain: str, return_path_domain: str, mail_host: str) -> list[ExpectedRecord]:
    """SPF and the bounce MX go on the return-path domain: it is the envelope sender's
    domain, which SPF checks and DMARC aligns (relaxed) with the From domain. The HELO
    name gets an SPF record of its own ("a": the host itself), unless it is an address."""
    records = [
        ExpectedRecord(SPF, "TXT", return_path_domain, f"v=spf1 {_spf_mechanism(mail_host)} ~all"),
        ExpectedRecord(DMARC, "TXT", f"_dmarc.{domain}", "v=DMARC1; p=none"),
        ExpectedRecord(RETURN_PATH, "MX", return_path_domain, f"10 {mail_host}"),
    ]
    if _spf_mechanism(mail_host).startswith("a:"):
        records.append(ExpectedRecord(SPF_HELO, "TXT", mail_host, "v=spf1 a -all"))
    return records


async def _lookup(resolver: dns.asyncresolver.Resolver, name: str, rdtype: str) -> list[str]:
    try:
        answer = await resolver.resolve(name, rdtype, search=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except dns.exception.DNSException as error:
        raise _Unavailable(f"DNS lookup of {name} {rdtype} failed: {error}") from error
    if rdtype == "TXT":
        return [b"".join(r.strings).decode("utf-8", "replace") for r in answer]
    return [r.exchange.to_text(omit_final_dot=True).lower() for r in answer]


def _tags(txt: str) -> dict[str, str]:
    tags = {}
    for part in txt.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            tags[name.strip().lower()] = "".join(value.split())
    return tags


def _judge(record: ExpectedRecord, found: list[str]) -> CheckResult:
    if not found:
        return CheckResult(False, f"no {record.type} record at {record.name}")
    if record.purpose == DKIM:
        expected = _tags(record.value)["p"]
        if any(_tags(txt).get("p") == expected for txt in found):
            return CheckResult(True, "published")
        return CheckResult(False, "a TXT record is published but its p= key is not this key")
    if record.purpose in (SPF, SPF_HELO):
        spf = [txt for txt in found if txt.lower().split()[:1] == ["v=spf1"]]
        if not spf:
            return CheckResult(False, f"no SPF (v=spf1) record at {record.name}")
        if len(spf) > 1:
            return CheckResult(False, "several SPF records: receivers treat that as an error")
        mechanism = record.value.split()[1].lower()
        if mechanism in spf[0].lower().split():
            return CheckResult(True, "published")
        return CheckResult(False, f"the SPF record does not include {mechanism}")
    if record.purpose == DMARC:
        if any(txt.replace(" ", "").upper().startswith("V=DMARC1") for txt in found):
            return CheckResult(True, "published")
        return CheckResult(False, f"no DMARC (v=DMARC1) record at {record.name}")
    host = record.value.split()[1].rstrip(".").lower()
    if host in found:
        return CheckResult(True, "published")
    return CheckResult(False, f"the MX of {record.name} does not name {host}")


async def check(resolver: dns.asyncresolver.Resolver, record: ExpectedRecord) -> CheckResult:
    try:
        found = await _lookup(resolver, record.name, record.type)
    except _Unavailable as error:
        return CheckResult(None, str(error))
    return _judge(record, found)
