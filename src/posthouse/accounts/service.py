"""Workspaces, senders and their credentials."""

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from posthouse.accounts import tokens
from posthouse.accounts.repository import AccountRepository
from posthouse.addresses import normalize_email
from posthouse.db.models import ApiKey, Sender, Workspace
from posthouse.errors import Forbidden, SenderNotFound, Unauthenticated, ValidationFailed
from posthouse.ttl_cache import TtlCache


@dataclass(frozen=True)
class IssuedTokens:
    workspace: Workspace
    sender: Sender
    access_token: str
    secret_token: str


@dataclass(frozen=True)
class SenderCredentials:
    """Who is calling: the key, its workspace, and the sender the key is bound to."""

    key: ApiKey
    workspace: Workspace
    sender: Sender


# Sender credentials an api process resolved, by the digest of the access token: the key
# lookup is a quarter of the database work of an accepted send. A key revoked or a
# workspace suspended elsewhere takes effect within the ttl (queued mail of a suspended
# workspace is held by the worker anyway). The secret is still checked on every request;
# unknown tokens are never cached.
CredentialCache = TtlCache[str, SenderCredentials]


@dataclass(frozen=True)
class WorkspaceCredentials:
    """A workspace-scoped key (``Authorization: Bearer phk_...``) and its scopes."""

    key: ApiKey
    workspace: Workspace

    def allows(self, scope: str) -> bool:
        return scope in self.key.scopes.split()


# Workspace keys an api process resolved, by the key's lookup digest: as CredentialCache.
WorkspaceKeyCache = TtlCache[str, WorkspaceCredentials]


# admin: the admin API; send: sends with a workspace key; channel.send and channel.view:
# seed 004's permissions Channel.send and Channel.view.
SCOPES = ("admin", "send", "channel.send", "channel.view")


@dataclass(frozen=True)
class IssuedKey:
    workspace: Workspace
    key: ApiKey
    token: str


async def get_or_create_workspace(session: AsyncSession, *, name: str) -> Workspace:
    accounts = AccountRepository(session)
    workspace = await accounts.workspace_by_name(name)
    if workspace is None:
        workspace = Workspace(name=name)
        await accounts.add(workspace)
    return workspace


async def add_sender(session: AsyncSession, *, workspace_name: str, email: str) -> IssuedTokens:
    """Register a sender (creating the workspace when needed) and issue its token pair.

    Registering an existing sender again issues an additional pair; older pairs stay valid
    until revoked.
    """
    try:
        # "@domain" registers the whole domain: any address in it may send.
        address = (
            "@" + normalize_email("x" + email).split("@")[1]
            if email.startswith("@")
            else normalize_email(email)
        ).lower()
    except ValidationFailed as error:
        raise ValidationFailed(f"Invalid sender email: {error.detail}") from None
    accounts = AccountRepository(session)
    workspace = await get_or_create_workspace(session, name=workspace_name)
    sender = await accounts.sender(workspace.id, address)
    if sender is None:
        sender = Sender(
            workspace_id=workspace.id, email=address, domain_name=address.rsplit("@", 1)[1]
        )
        await accounts.add(sender)
    access, secret = tokens.new_access_token(), tokens.new_secret_token()
    await accounts.add(
        ApiKey(
            workspace_id=workspace.id,
            sender_id=sender.id,
            name=f"sender {address}",
            lookup_hash=tokens.digest(access),
            secret_hash=tokens.digest(secret),
        )
    )
    return IssuedTokens(workspace, sender, access, secret)


async def authenticate_sender(
    session: AsyncSession,
    *,
    access_token: str,
    secret_token: str,
    cache: CredentialCache | None = None,
) -> SenderCredentials:
    """Resolve an access+secret pair to its sender. Unknown and wrong pairs look the same."""
    lookup_hash = tokens.digest(access_token)
    cached = cache.get(lookup_hash) if cache is not None else None
    if cached is not None:
        if not tokens.secret_matches(secret_token, cached.key.secret_hash):
            raise SenderNotFound()
        return cached
    found = await AccountRepository(session).key_with_owner(lookup_hash)
    expected = found[0].secret_hash if found else tokens.digest("")
    if not tokens.secret_matches(secret_token, expected) or found is None:
        raise SenderNotFound()
    key, sender, workspace = found
    if sender is None:  # a workspace key: it has no secret token
        raise SenderNotFound()
    credentials = SenderCredentials(key, workspace, sender)
    if cache is not None:
        # Out of the session, so that a rollback of this request cannot expire what
        # later requests read.
        for instance in found:
            session.expunge(instance)
        cache.put(lookup_hash, credentials)
    return credentials


def sends_as(sender: Sender, from_email: str) -> bool:
    """Whether ``sender`` covers ``from_email``: the same address, or any address of a
    domain-wide ``@domain`` sender. Local parts compare case-insensitively: no mail
    system we relay for treats ``No-Reply@`` and ``no-reply@`` as different senders."""
    bound = sender.email.lower()
    given = from_email.lower()
    return given == bound or (bound.startswith("@") and given.rsplit("@", 1)[1] == bound[1:])


async def sender_of_workspace(
    session: AsyncSession, *, workspace_id: uuid.UUID, from_email: str
) -> Sender:
    """The workspace's sender that covers ``from_email`` (the address itself first, then
    its domain-wide ``@domain`` sender), for a caller not bound to one sender."""
    accounts = AccountRepository(session)
    given = from_email.lower()
    for candidate in (given, "@" + given.rsplit("@", 1)[1]):
        sender = await accounts.sender(workspace_id, candidate)
        if sender is not None:
            return sender
    raise SenderNotFound()


async def only_sender_address(session: AsyncSession, *, workspace_id: uuid.UUID) -> str | None:
    """The workspace's one sender address, when it has exactly one (a door whose document
    lets a send leave out its From sends from it); None otherwise."""
    found = await AccountRepository(session).address_senders(workspace_id, limit=2)
    return found[0] if len(found) == 1 else None


async def create_workspace_key(
    session: AsyncSession, *, workspace_name: str, name: str = "", scopes: str = "admin send"
) -> IssuedKey:
    """Issue a workspace-wide key (not bound to one sender). Shown once, stored hashed."""
    given = scopes.split()
    unknown = [scope for scope in given if scope not in SCOPES]
    if unknown or not given:
        raise ValidationFailed(f"scopes must be some of: {', '.join(SCOPES)}", field="scopes")
    scopes = " ".join(dict.fromkeys(given))
    workspace = await get_or_create_workspace(session, name=workspace_name)
    token, lookup, secret_digest = tokens.new_workspace_key()
    key = ApiKey(
        workspace_id=workspace.id,
        sender_id=None,
        name=name or "workspace key",
        lookup_hash=lookup,
        secret_hash=secret_digest,
        scopes=scopes,
    )
    await AccountRepository(session).add(key)
    return IssuedKey(workspace, key, token)


async def authenticate_workspace_key(
    session: AsyncSession,
    *,
    token: str,
    scope: str | None,
    cache: WorkspaceKeyCache | None = None,
) -> WorkspaceCredentials:
    """Resolve a ``phk_`` key that carries ``scope``; anything else is Unauthenticated.
    With no scope the caller checks the scopes itself (after checking the workspace).
    With a ``cache``, as ``authenticate_sender``'s: the secret is checked every time."""
    parts = tokens.split_workspace_key(token)
    cached = cache.get(parts[0]) if cache is not None and parts else None
    if cached is not None and parts:
        if not tokens.secret_matches(parts[1], cached.key.secret_hash):
            raise Unauthenticated("invalid API key")
        credentials = cached
    else:
        found = await AccountRepository(session).key_with_owner(parts[0]) if parts else None
        expected = found[0].secret_hash if found else tokens.digest("")
        secret = parts[1] if parts else ""
        if not tokens.secret_matches(secret, expected) or found is None or found[1] is not None:
            raise Unauthenticated("invalid API key")
        key, _, workspace = found
        credentials = WorkspaceCredentials(key, workspace)
        if cache is not None and parts:
            session.expunge(key)
            session.expunge(workspace)
            cache.put(parts[0], credentials)
    if scope is not None and not credentials.allows(scope):
        raise Forbidden(f"this key lacks the {scope!r} scope")
    return credentials


def issued_key_json(issued: IssuedKey) -> dict[str, str]:
    """What ``key create --json`` and the admin API show of a new key."""
    return {
        "key": issued.token,
        "workspace": issued.workspace.name,
        "workspace_id": str(issued.workspace.id),
        "scopes": issued.key.scopes,
    }
