"""``posthouse key``: workspace API keys."""

import json
from typing import Annotated

import typer

from posthouse.cli.common import (
    run,
    with_session,
)
from posthouse.config import get_settings

app = typer.Typer(help="Manage workspace API keys.", no_args_is_help=True)


@app.command("create")
def key_create(
    workspace: Annotated[
        str, typer.Option(help="Workspace name (created when missing).")
    ] = "default",
    name: Annotated[str, typer.Option(help="A label for the key.")] = "",
    scopes: Annotated[
        str, typer.Option(help="Space-separated scopes: admin, send.")
    ] = "admin send",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Create a workspace key for the admin API (Authorization: Bearer ...). Shown once."""
    from posthouse.accounts.service import create_workspace_key

    settings = get_settings()
    issued = run(
        lambda: with_session(
            settings,
            lambda s: create_workspace_key(s, workspace_name=workspace, name=name, scopes=scopes),
        )
    )
    if as_json:
        typer.echo(
            json.dumps({"workspace": issued.workspace.name, "key": issued.token, "scopes": scopes})
        )
        return
    typer.echo(
        f"workspace: {issued.workspace.name}\nkey:       {issued.token}\nscopes:    {scopes}"
    )
    typer.echo("The key is shown once; posthouse stores only its hash.")
