"""Workspaces, senders and their credentials."""

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from posthouse.accounts import tokens
from posthouse.accounts.repository import AccountRepository
from posthouse.db.models import ApiKey, Sender, Workspace
from posthouse.errors import SenderNotFound, ValidationFailed
from posthouse.sending.addresses import normalize_email


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
        )
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
    session: AsyncSession, *, access_token: str, secret_token: str
) -> SenderCredentials:
    """Resolve an access+secret pair to its sender. Unknown and wrong pairs look the same."""
    found = await AccountRepository(session).key_with_sender(tokens.digest(access_token))
    expected = found[0].secret_hash if found else tokens.digest("")
    if not tokens.secret_matches(secret_token, expected) or found is None or found[1] is None:
        raise SenderNotFound("Sender email is not found in platform!")
    key, sender = found
    workspace = await AccountRepository(session).workspace(key.workspace_id)
    assert workspace is not None  # foreign key
    return SenderCredentials(key, workspace, sender)


def ensure_sends_as(credentials: SenderCredentials, from_email: str) -> None:
    """A key bound to a sender sends only as that address (or any address of a
    domain-wide ``@domain`` sender)."""
    bound = credentials.sender.email
    allowed = from_email == bound or (
        bound.startswith("@") and from_email.rsplit("@", 1)[1] == bound[1:]
    )
    if not allowed:
        raise SenderNotFound("Sender email is not found in platform!")
