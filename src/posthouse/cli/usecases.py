"""``posthouse usecase``: add and list a workspace's email use cases."""

import json
from typing import Annotated, Any

import typer

from posthouse.cli.common import session_command

app = typer.Typer(help="Manage email use cases (seed 004).", no_args_is_help=True)

WorkspaceName = Annotated[str, typer.Option("--workspace", help="The workspace's name.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
TrackOpens = Annotated[
    str | None,
    typer.Option(help="Default open tracking of its mail: on, off, or inherit (the workspace's)."),
]
TrackClicks = Annotated[
    str | None,
    typer.Option(help="Default click tracking: none, html, text, both, or inherit."),
]
_OPENS = {"on": True, "off": False, "inherit": None}


def _engagement(track_opens: str | None, track_clicks: str | None) -> dict[str, object]:
    """The tracking defaults given on the command line ("inherit" is None)."""
    changes: dict[str, object] = {}
    if track_opens is not None:
        if track_opens not in _OPENS:
            raise typer.BadParameter("on, off or inherit", param_hint="--track-opens")
        changes["track_opens"] = _OPENS[track_opens]
    if track_clicks is not None:
        changes["track_clicks"] = None if track_clicks == "inherit" else track_clicks
    return changes


def _show(shown: dict[str, Any]) -> None:
    typer.echo(f"use case {shown['name']} ({shown['type']}): {shown['id']}")
    typer.echo(f"sends as {shown['from']}, setup {shown['setup_id']}")
    typer.echo(
        f"track opens: {_default(shown['track_opens'])}, "
        f"track clicks: {_default(shown['track_clicks'])}"
    )


def _default(value: object) -> str:
    if value is None:
        return "inherit"
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


@app.command("add")
def usecase_add(
    name: Annotated[str, typer.Argument(help="The use case's name.")],
    workspace: WorkspaceName,
    domain: Annotated[str, typer.Option(help="The sending domain (email setup) it uses.")],
    type: Annotated[str, typer.Option(help="transactional or marketing.")] = "transactional",
    from_email: Annotated[
        str | None, typer.Option("--from", help="Sender address; default no-reply@DOMAIN.")
    ] = None,
    track_opens: TrackOpens = None,
    track_clicks: TrackClicks = None,
    as_json: JsonOption = False,
) -> None:
    """Add a use case bound to one of the workspace's domains. A marketing use case's
    mail always carries one-click unsubscribe."""
    from posthouse.usecases import service
    from posthouse.workspaces import service as workspaces

    engagement = _engagement(track_opens, track_clicks)

    async def work(session: Any) -> dict[str, Any]:
        workspace_id = await workspaces.workspace_id(session, name=workspace)
        use_case = await service.add_use_case(
            session,
            workspace_id=workspace_id,
            name=name,
            domain=domain,
            type=type,
            from_email=from_email,
            engagement=engagement,
        )
        return service.as_json(use_case)

    shown = session_command(work)
    if as_json:
        typer.echo(json.dumps(shown))
        return
    _show(shown)


@app.command("update")
def usecase_update(
    use_case: Annotated[str, typer.Argument(help="The use case's name or id.")],
    workspace: WorkspaceName,
    track_opens: TrackOpens = None,
    track_clicks: TrackClicks = None,
    as_json: JsonOption = False,
) -> None:
    """Change a use case's tracking defaults; options left out stay as they are."""
    from posthouse.usecases import service
    from posthouse.workspaces import service as workspaces

    engagement = _engagement(track_opens, track_clicks)

    async def work(session: Any) -> dict[str, Any]:
        workspace_id = await workspaces.workspace_id(session, name=workspace)
        updated = await service.update_use_case(
            session, workspace_id=workspace_id, use_case=use_case, changes=engagement
        )
        return service.as_json(updated)

    shown = session_command(work)
    if as_json:
        typer.echo(json.dumps(shown))
        return
    _show(shown)


@app.command("list")
def usecase_list(workspace: WorkspaceName, as_json: JsonOption = False) -> None:
    """The workspace's use cases."""
    from posthouse.usecases import service
    from posthouse.workspaces import service as workspaces

    async def work(session: Any) -> list[dict[str, Any]]:
        workspace_id = await workspaces.workspace_id(session, name=workspace)
        return [
            service.as_json(u)
            for u in await service.list_use_cases(session, workspace_id=workspace_id)
        ]

    shown = session_command(work)
    if as_json:
        typer.echo(json.dumps(shown))
        return
    for use_case in shown:
        typer.echo(
            f"{use_case['id']}  {use_case['type']:<13}  {use_case['name']}  ({use_case['from']})"
        )
