"""``posthouse suppression``: a workspace's suppression list."""

import json
from typing import Annotated, Any

import typer

from posthouse.cli.common import (
    session_command,
)

app = typer.Typer(help="Manage a workspace's suppression list.", no_args_is_help=True)

SuppressionWorkspace = Annotated[str, typer.Option("--workspace", help="The workspace's name.")]
UseCaseOption = Annotated[
    str | None,
    typer.Option(
        "--use-case",
        help="A use case's id: the entry covers its mail only (default: all the workspace's).",
    ),
]


def _suppression_json(entry: Any) -> dict[str, Any]:
    from posthouse.protections.schemas import scope_json

    return {
        "address": entry.address,
        "reason": entry.reason,
        "createdAt": entry.created_at.isoformat(),
        "expiresAt": entry.expires_at.isoformat() if entry.expires_at else None,
        "sourceEventId": str(entry.source_event_id) if entry.source_event_id else None,
        "createdBy": entry.created_by,
        **scope_json(entry),
    }


@app.command("list")
def suppression_list(
    workspace: SuppressionWorkspace,
    reason: Annotated[
        str | None, typer.Option(help="hard_bounce, complaint, unsubscribe or manual.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """Every suppressed address of the workspace, oldest first."""
    from posthouse.protections import suppression
    from posthouse.workspaces import service as workspaces

    async def work(session: Any) -> list[dict[str, Any]]:
        workspace_id = await workspaces.workspace_id(session, name=workspace)
        entries: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = await suppression.list_page(
                session,
                workspace_id=workspace_id,
                reason=suppression.parse_reason(reason) if reason else None,
                cursor=cursor,
                limit=1000,
            )
            entries += [_suppression_json(e) for e in page.entries]
            if page.next_cursor is None:
                return entries
            cursor = page.next_cursor

    entries = session_command(work)
    if as_json:
        typer.echo(json.dumps(entries))
        return
    for entry in entries:
        scope = f"use case {entry['useCaseId']}" if entry["useCaseId"] else "workspace"
        typer.echo(f"{entry['address']}\t{entry['reason']}\t{scope}\t{entry['createdAt']}")


@app.command("add")
def suppression_add(
    address: Annotated[str, typer.Argument(help="The address to stop sending to.")],
    workspace: SuppressionWorkspace,
    reason: Annotated[str, typer.Option(help="hard_bounce, complaint, unsubscribe or manual.")] = (
        "manual"
    ),
    expires_at: Annotated[
        str | None, typer.Option(help="When the entry lapses (ISO 8601; UTC if no offset).")
    ] = None,
    use_case: UseCaseOption = None,
) -> None:
    """Add an address to the suppression list (or replace its entry)."""
    import getpass
    from datetime import UTC, datetime

    from posthouse.protections import suppression
    from posthouse.workspaces import service as workspaces

    expires = None
    if expires_at is not None:
        try:
            expires = datetime.fromisoformat(expires_at)
        except ValueError:
            typer.echo(f"error: --expires-at {expires_at!r} is not an ISO 8601 time", err=True)
            raise typer.Exit(2) from None
        expires = expires if expires.tzinfo else expires.replace(tzinfo=UTC)

    async def work(session: Any) -> Any:
        return await suppression.add(
            session,
            workspace_id=await workspaces.workspace_id(session, name=workspace),
            address=address,
            reason=suppression.parse_reason(reason),
            expires_at=expires,
            created_by=f"cli {getpass.getuser()}",
            use_case_id=suppression.parse_use_case(use_case),
        )

    entry = session_command(work)
    typer.echo(f"suppressed {entry.address} ({entry.reason})")


@app.command("remove")
def suppression_remove(
    address: Annotated[str, typer.Argument(help="The address to send to again.")],
    workspace: SuppressionWorkspace,
    use_case: UseCaseOption = None,
) -> None:
    """Remove an address from the suppression list."""
    from posthouse.protections import suppression
    from posthouse.workspaces import service as workspaces

    async def work(session: Any) -> None:
        await suppression.remove(
            session,
            workspace_id=await workspaces.workspace_id(session, name=workspace),
            address=address,
            use_case_id=suppression.parse_use_case(use_case),
        )

    session_command(work)
    typer.echo(f"removed {address}")
