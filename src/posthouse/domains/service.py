"""Sending domains ("email setups"): DKIM keys, the DNS records to publish, verification.

Invariants:
- A domain is verified while its active DKIM record, SPF, DMARC and return-path MX are
  all seen in DNS; losing any of them unverifies it (the periodic re-check notices).
- A temporary DNS failure changes no record's state.
- Key rotation publishes the new selector beside the active one; the switch is allowed
  only once the new record is in DNS, so receivers can always verify what we sign.
- Workspaces never see each other's domains: "not yours" is DomainNotFound.
- Any workspace may add any valid domain name; DNS settles who may send from it. Only
  a workspace whose own DKIM key (2048-bit, generated for it) is published verifies, and
  only the domain's owner can publish it (docs/dns-setup.md, "Who may hold a domain").
- DNS lookups run with no transaction open: they can take seconds, and on SQLite an open
  transaction holds the write lock every other request waits for.
"""

import asyncio
import logging
import re
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import dns.asyncresolver
import idna
from sqlalchemy.ext.asyncio import AsyncSession

from posthouse.accounts.repository import AccountRepository
from posthouse.addresses import shown
from posthouse.config import Settings
from posthouse.db.base import utcnow
from posthouse.db.models import DkimKey, Domain, DomainRecord
from posthouse.domains import checks
from posthouse.domains.dns import create_resolver
from posthouse.domains.repository import DomainRepository
from posthouse.errors import DomainExists, DomainNotFound, DomainNotVerified, ValidationFailed
from posthouse.mime.dkim import generate_key
from posthouse.ttl_cache import TtlCache

log = logging.getLogger(__name__)

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


@dataclass(frozen=True)
class SendingIdentity:
    """What the worker needs to send as a domain: where bounces go and how to sign."""

    domain: str
    return_path_domain: str
    verified: bool
    dkim_selector: str | None
    dkim_private_key_pem: str | None


@dataclass(frozen=True)
class DomainDetail:
    domain: Domain
    records: list[DomainRecord]
    keys: list[DkimKey]

    @property
    def active_selector(self) -> str | None:
        return next((k.selector for k in self.keys if k.active), None)

    @property
    def required_records(self) -> list[DomainRecord]:
        """Every record but the DKIM records of inactive selectors and the recommended
        ones (the HELO name's SPF)."""
        active = self.active_selector
        return [
            r
            for r in self.records
            if r.purpose not in checks.OPTIONAL_PURPOSES
            and (r.purpose != checks.DKIM or r.name.split(".", 1)[0] == active)
        ]


def normalize_domain(name: str) -> str:
    """A lower-case ASCII (IDNA) host name with at least two labels, or ValidationFailed.
    Not an IP address (a top-level label is never all digits), and every ``xn--`` label
    a valid IDNA 2008 A-label."""
    if len(name) > 300:
        raise ValidationFailed(f"invalid domain name: {shown(name)}")
    candidate = name.strip().rstrip(".").lower()
    try:
        candidate = candidate.encode("idna").decode("ascii")
    except UnicodeError:
        raise ValidationFailed(f"invalid domain name: {shown(name)}") from None
    labels = candidate.split(".")
    if len(candidate) > 253 or len(labels) < 2 or not all(_LABEL.match(x) for x in labels):
        raise ValidationFailed(f"invalid domain name: {shown(name)}")
    if labels[-1].isdigit():
        raise ValidationFailed(f"invalid domain name: {shown(name)}: an IP address")
    if not all(_valid_a_label(x) for x in labels if x.startswith("xn--")):
        raise ValidationFailed(f"invalid domain name: {shown(name)}: invalid IDNA label")
    return candidate


def _valid_a_label(label: str) -> bool:
    try:
        return idna.encode(idna.decode(label)).decode("ascii") == label
    except idna.IDNAError:
        return False


def mail_host(settings: Settings) -> str:
    """The host the SPF and return-path MX records name: this MTA's public name."""
    return settings.mail_hostname or settings.helo_name or socket.getfqdn()


def _selector(taken: set[str], now: datetime) -> str:
    base = f"ph{now:%Y%m}"
    if base not in taken:
        return base
    return next(f"{base}{n}" for n in range(2, 1000) if f"{base}{n}" not in taken)


def _record(domain: Domain, expected: checks.ExpectedRecord) -> DomainRecord:
    return DomainRecord(
        domain_id=domain.id,
        purpose=expected.purpose,
        type=expected.type,
        name=expected.name,
        value=expected.value,
        verified=False,
    )


async def _new_key(domain: Domain, selector: str, *, active: bool) -> tuple[DkimKey, DomainRecord]:
    # Generating a 2048-bit key takes tens of milliseconds of CPU: keep the loop free.
    pair = await asyncio.to_thread(generate_key)
    key = DkimKey(
        domain_id=domain.id,
        selector=selector,
        private_key_pem=pair.private_key_pem,
        public_key_b64=pair.public_key_b64,
        active=active,
    )
    record = _record(domain, checks.dkim_record(domain.name, selector, pair.public_key_b64))
    return key, record


async def add_domain(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    name: str,
    mail_host: str,
    return_path_domain: str | None = None,
) -> DomainDetail:
    """Create the domain with an active 2048-bit DKIM key and the records to publish."""
    name = normalize_domain(name)
    return_path = normalize_domain(return_path_domain or f"bounces.{name}")
    if not return_path.endswith(f".{name}"):
        raise ValidationFailed("the return-path domain must be a subdomain of the domain")
    domains = DomainRepository(session)
    if await domains.get(workspace_id, name) is not None:
        raise DomainExists(f"domain {name} already exists in this workspace")
    domain = Domain(workspace_id=workspace_id, name=name, return_path_domain=return_path)
    await domains.add(domain)
    key, dkim_record = await _new_key(domain, _selector(set(), utcnow()), active=True)
    standing = checks.standing_records(name, return_path, mail_host)
    await domains.add(key, dkim_record, *(_record(domain, r) for r in standing))
    return await _detail(session, domain)


async def _detail(session: AsyncSession, domain: Domain) -> DomainDetail:
    domains = DomainRepository(session)
    return DomainDetail(domain, await domains.records(domain.id), await domains.keys(domain.id))


async def _own_domain(session: AsyncSession, *, workspace_id: uuid.UUID, name: str) -> Domain:
    try:
        normal = normalize_domain(name)
    except ValidationFailed:
        normal = None
    domain = await DomainRepository(session).get(workspace_id, normal) if normal else None
    if domain is None:
        raise DomainNotFound(f"domain {name} not found")
    return domain


async def get_domain(session: AsyncSession, *, workspace_id: uuid.UUID, name: str) -> DomainDetail:
    return await _detail(session, await _own_domain(session, workspace_id=workspace_id, name=name))


async def list_domains(session: AsyncSession, *, workspace_id: uuid.UUID) -> list[DomainDetail]:
    return [
        await _detail(session, domain)
        for domain in await DomainRepository(session).for_workspace(workspace_id)
    ]


async def find_workspace_of(session: AsyncSession, *, name: str) -> uuid.UUID:
    """The workspace holding ``name`` when exactly one does (the CLI's default)."""
    found = await DomainRepository(session).by_name(normalize_domain(name))
    if not found:
        raise DomainNotFound(f"domain {name} not found")
    if len(found) > 1:
        raise ValidationFailed(f"domain {name} exists in several workspaces: name one")
    return found[0].workspace_id


def _expected(record: DomainRecord) -> checks.ExpectedRecord:
    return checks.ExpectedRecord(record.purpose, record.type, record.name, record.value)


async def check_records(
    resolver: dns.asyncresolver.Resolver, detail: DomainDetail
) -> dict[uuid.UUID, checks.CheckResult]:
    """Look a domain's records up. No database access: callable outside transactions."""
    return await _look_up(resolver, {r.id: _expected(r) for r in detail.records})


async def _look_up(
    resolver: dns.asyncresolver.Resolver, expected: dict[uuid.UUID, checks.ExpectedRecord]
) -> dict[uuid.UUID, checks.CheckResult]:
    results = await asyncio.gather(*(checks.check(resolver, e) for e in expected.values()))
    return dict(zip(expected, results, strict=True))


def _apply(
    detail: DomainDetail, results: dict[uuid.UUID, checks.CheckResult], *, now: datetime
) -> DomainDetail:
    """Store what DNS showed; records without a result (added since) keep their state."""
    for record in detail.records:
        result = results.get(record.id)
        if result is None:
            continue
        record.detail = result.detail
        if result.verified is not None:
            record.verified = result.verified
            record.checked_at = now
    domain = detail.domain
    domain.last_checked_at = now
    if all(r.verified for r in detail.required_records):
        domain.verified_at = domain.verified_at or now
    elif domain.verified_at is not None:
        missing = ", ".join(
            f"{r.purpose} {r.name}" for r in detail.required_records if not r.verified
        )
        log.warning("domain %s is no longer verified: %s", domain.name, missing)
        domain.verified_at = None
    return detail


async def verify_domain(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    name: str,
    resolver: dns.asyncresolver.Resolver,
) -> DomainDetail:
    """Look every record up in DNS now, with no transaction open, and store what was seen."""
    detail = await get_domain(session, workspace_id=workspace_id, name=name)
    expected = {r.id: _expected(r) for r in detail.records}
    await _end_reads(session)
    results = await _look_up(resolver, expected)
    detail = await get_domain(session, workspace_id=workspace_id, name=name)
    _apply(detail, results, now=utcnow())
    await session.flush()
    return detail


async def _end_reads(session: AsyncSession) -> None:
    """End the request's transaction before slow network I/O. It has read, not written
    (a rate-limit bucket on SQLite at most, which would commit anyway), so committing
    loses nothing, and objects read stay usable (expire_on_commit=False)."""
    await session.commit()


async def rotate_dkim(session: AsyncSession, *, workspace_id: uuid.UUID, name: str) -> DomainDetail:
    """Add a new, inactive selector whose record must be published before activation."""
    detail = await get_domain(session, workspace_id=workspace_id, name=name)
    selector = _selector({k.selector for k in detail.keys}, utcnow())
    key, record = await _new_key(detail.domain, selector, active=False)
    await DomainRepository(session).add(key, record)
    return await _detail(session, detail.domain)


async def activate_dkim(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    name: str,
    selector: str,
    resolver: dns.asyncresolver.Resolver,
) -> DomainDetail:
    """Sign with ``selector`` from now on, once DNS shows its record. The previous key's
    record stays listed: remove it from DNS only after mail signed with it has arrived."""
    detail = await get_domain(session, workspace_id=workspace_id, name=name)
    key = next((k for k in detail.keys if k.selector == selector), None)
    record = next(
        (
            r
            for r in detail.records
            if r.purpose == checks.DKIM and r.name.split(".", 1)[0] == selector
        ),
        None,
    )
    if key is None or record is None:
        raise DomainNotFound(f"selector {selector} not found for domain {detail.domain.name}")
    await _end_reads(session)
    result = await checks.check(resolver, _expected(record))
    now = utcnow()
    record.detail = result.detail
    if result.verified is not None:
        record.verified, record.checked_at = result.verified, now
    if not result.verified:
        raise DomainNotVerified(
            f"the DKIM record {record.name} is not published yet ({result.detail})"
        )
    for other in detail.keys:
        other.active = other is key
    await session.flush()
    return await _detail(session, detail.domain)


# (workspace, domain) pairs an api process found verified. Only a verified state is kept:
# verifying a domain takes effect at once; removing it or losing its records reaches every
# process within the ttl. The send then needs no read before its insert, which can then
# commit on its own (MessageRepository.add).
VerifiedDomainCache = TtlCache[tuple[uuid.UUID, str], bool]


async def ensure_can_send(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    email: str,
    cache: VerifiedDomainCache | None = None,
) -> None:
    """Refuse a From address whose domain the workspace has not verified."""
    domain = email.rsplit("@", 1)[1].lower()
    key = (workspace_id, domain)
    if cache is not None and cache.get(key):
        return
    if not await is_verified(session, workspace_id=workspace_id, name=domain):
        raise DomainNotVerified(f"Unverified Domain - {domain}")
    if cache is not None:
        cache.put(key, True)


async def sending_identities(
    session: AsyncSession, *, workspace_ids_and_domains: set[tuple[uuid.UUID, str]]
) -> dict[tuple[uuid.UUID, str], SendingIdentity]:
    """The identity of each (workspace, From domain) pair that names a known domain.
    Pairs without a domain are absent: their mail goes unsigned, bounces to the From."""
    pairs = {(workspace_id, name.lower()) for workspace_id, name in workspace_ids_and_domains}
    rows = await DomainRepository(session).with_active_keys(pairs)
    return {
        (domain.workspace_id, domain.name): SendingIdentity(
            domain=domain.name,
            return_path_domain=domain.return_path_domain,
            verified=domain.verified_at is not None,
            dkim_selector=key.selector if key else None,
            dkim_private_key_pem=key.private_key_pem if key else None,
        )
        for domain, key in rows
    }


async def claim_due_rechecks(
    session: AsyncSession, *, interval: timedelta, limit: int = 50
) -> list[DomainDetail]:
    """Domains whose records were last looked at more than ``interval`` ago, marked as
    checked now so other workers leave them alone."""
    now = utcnow()
    due = await DomainRepository(session).claim_due_checks(
        now=now, before=now - interval, limit=limit
    )
    return [await _detail(session, domain) for domain in due]


async def store_recheck(
    session: AsyncSession, *, domain_id: uuid.UUID, results: dict[uuid.UUID, checks.CheckResult]
) -> None:
    """Store a re-check whose DNS lookups ran outside any transaction."""
    domain = await session.get(Domain, domain_id)
    if domain is not None:
        _apply(await _detail(session, domain), results, now=utcnow())
        await session.flush()


def verification_resolver(settings: Settings) -> dns.asyncresolver.Resolver:
    """The configured resolver without a cache: a record published a minute ago, or one
    just removed, must show as it is now."""
    resolver = create_resolver(settings)
    resolver.cache = None
    return resolver


async def workspace_for(
    session: AsyncSession, *, domain: str, workspace_name: str | None
) -> uuid.UUID:
    """The workspace the CLI means: the one named, or the only one holding ``domain``."""
    if workspace_name is None:
        return await find_workspace_of(session, name=domain)
    workspace = await AccountRepository(session).workspace_by_name(workspace_name)
    if workspace is None:
        raise DomainNotFound(f"domain {domain} not found")
    return workspace.id


async def is_verified(session: AsyncSession, *, workspace_id: uuid.UUID, name: str) -> bool:
    return await DomainRepository(session).is_verified(workspace_id, name)


@dataclass(frozen=True)
class SendDomains:
    """The domains one message goes out with instead of its From domain's (None: the
    From domain's): DKIM d=, the envelope sender's domain, the tracking links' host."""

    signing_domain: str | None = None
    return_path_domain: str | None = None
    tracking_domain: str | None = None


def _parents(name: str) -> list[str]:
    """``name`` and every parent of it with at least two labels."""
    labels = name.split(".")
    return [".".join(labels[i:]) for i in range(len(labels) - 1)]


def _not_ours(field: str, name: str) -> ValidationFailed:
    return ValidationFailed(f"{field} {shown(name)} is not a domain of this account", field=field)


async def send_domains(
    session: AsyncSession, *, workspace_id: uuid.UUID, asked: SendDomains
) -> SendDomains:
    """What a message asked for (normalised names), checked against the workspace's
    domains in one query, so no request borrows a domain it was never given:

    - ``signing_domain``: one of its domains, with an active DKIM key;
    - ``return_path_domain``: one of its domains, whose return-path domain (where its
      bounces come back to this MTA) is used, or that return-path domain itself;
    - ``tracking_domain``: one of its domains or a host under one (``track.example.com``,
      pointed at posthouse with a CNAME).
    """
    names = {
        *filter(None, (asked.signing_domain, asked.return_path_domain)),
        *(_parents(asked.tracking_domain) if asked.tracking_domain else ()),
    }
    if not names:
        return asked
    found = await DomainRepository(session).send_domains(workspace_id, names)
    if asked.signing_domain is not None:
        keyed = [has_key for domain, has_key in found if domain.name == asked.signing_domain]
        if not keyed:
            raise _not_ours("signing_domain", asked.signing_domain)
        if not keyed[0]:
            raise ValidationFailed(
                f"signing_domain {shown(asked.signing_domain)} has no active DKIM key",
                field="signing_domain",
            )
    return_path = asked.return_path_domain
    if return_path is not None:
        return_path = next(
            (
                domain.return_path_domain
                for domain, _ in found
                if return_path in (domain.name, domain.return_path_domain)
            ),
            None,
        )
        if return_path is None:
            raise _not_ours("return_path_domain", asked.return_path_domain or "")
    if asked.tracking_domain is not None:
        parents = _parents(asked.tracking_domain)
        if not any(domain.name in parents for domain, _ in found):
            raise _not_ours("tracking_domain", asked.tracking_domain)
    return SendDomains(asked.signing_domain, return_path, asked.tracking_domain)
