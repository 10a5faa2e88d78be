"""``posthouse key``: workspace API keys."""

import json
from typing import Annotated

import typer

from posthouse.cli.common import session_command

app = typer.Typer(help="Manage workspace API keys.", no_args_is_help=True)


@app.command("create")
def key_create(
    workspace: Annotated[
        str, typer.Option(help="Workspace name (created when missing).")
    ] = "default",
    name: Annotated[str, typer.Option(help="A label for the key.")] = "",
    scopes: Annotated[
        str,
        typer.Option(help="Space-separated scopes: admin, send, channel.send, channel.view."),
    ] = "admin send",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Create a workspace key (Authorization: Bearer ...) for the admin API, or with
    channel.send / channel.view for seed 004's email API. Shown once."""
    from posthouse.accounts.service import create_workspace_key, issued_key_json

    issued = session_command(
        lambda s: create_workspace_key(s, workspace_name=workspace, name=name, scopes=scopes)
    )
    if as_json:
        typer.echo(json.dumps(issued_key_json(issued)))
        return
    typer.echo(
        f"workspace: {issued.workspace.name}\nkey:       {issued.token}\n"
        f"scopes:    {issued.key.scopes}"
    )
    typer.echo("The key is shown once; posthouse stores only its hash.")
