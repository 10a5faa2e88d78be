"""``posthouse usecase``: add and list a workspace's email use cases."""

import json
from typing import Annotated, Any

import typer

from posthouse.cli.common import session_command

app = typer.Typer(help="Manage email use cases (seed 004).", no_args_is_help=True)

WorkspaceName = Annotated[str, typer.Option("--workspace", help="The workspace's name.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@app.command("add")
def usecase_add(
    name: Annotated[str, typer.Argument(help="The use case's name.")],
    workspace: WorkspaceName,
    domain: Annotated[str, typer.Option(help="The sending domain (email setup) it uses.")],
    type: Annotated[str, typer.Option(help="transactional or marketing.")] = "transactional",
    from_email: Annotated[
        str | None, typer.Option("--from", help="Sender address; default no-reply@DOMAIN.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Add a use case bound to one of the workspace's domains."""
    from posthouse.usecases import service
    from posthouse.workspaces import service as workspaces

    async def work(session: Any) -> dict[str, str]:
        workspace_id = await workspaces.workspace_id(session, name=workspace)
        use_case = await service.add_use_case(
            session,
            workspace_id=workspace_id,
            name=name,
            domain=domain,
            type=type,
            from_email=from_email,
        )
        return service.as_json(use_case)

    shown = session_command(work)
    if as_json:
        typer.echo(json.dumps(shown))
        return
    typer.echo(f"use case {shown['name']} ({shown['type']}): {shown['id']}")
    typer.echo(f"sends as {shown['from']}, setup {shown['setup_id']}")


@app.command("list")
def usecase_list(workspace: WorkspaceName, as_json: JsonOption = False) -> None:
    """The workspace's use cases."""
    from posthouse.usecases import service
    from posthouse.workspaces import service as workspaces

    async def work(session: Any) -> list[dict[str, str]]:
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
