"""``posthouse sender``: senders and their token pairs."""

import json
from typing import Annotated

import typer

from posthouse.cli.common import (
    run,
    with_session,
)
from posthouse.config import get_settings

app = typer.Typer(help="Manage senders and their tokens.", no_args_is_help=True)


@app.command("add")
def sender_add(
    email: Annotated[str, typer.Argument(help="Sender address, or @domain for a whole domain.")],
    workspace: Annotated[
        str, typer.Option(help="Workspace name (created when missing).")
    ] = "default",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Register a sender and print its access and secret tokens (shown once)."""
    from posthouse.accounts.service import add_sender
    from posthouse.errors import PosthouseError

    settings = get_settings()
    try:
        issued = run(
            lambda: with_session(
                settings, lambda s: add_sender(s, workspace_name=workspace, email=email)
            )
        )
    except PosthouseError as error:
        typer.echo(f"error: {error.detail}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "workspace": issued.workspace.name,
                    "email": issued.sender.email,
                    "accessToken": issued.access_token,
                    "secretToken": issued.secret_token,
                }
            )
        )
        return
    typer.echo(f"workspace:    {issued.workspace.name}")
    typer.echo(f"sender:       {issued.sender.email}")
    typer.echo(f"access token: {issued.access_token}")
    typer.echo(f"secret token: {issued.secret_token}")
    typer.echo("The tokens are shown once; posthouse stores only their hashes.")
