"""The ``posthouse`` command line: one module per subject, assembled here."""

import typer

from posthouse.cli import (
    bounces,
    domains,
    keys,
    senders,
    server,
    suppressions,
    templates,
    usecases,
    workspaces,
)

app = typer.Typer(
    help="posthouse: a self-hosted transactional email API server.", no_args_is_help=True
)
for command in (server.migrate, server.serve, server.api, server.worker, server.inbound):
    app.command()(command)
app.add_typer(senders.app, name="sender")
app.add_typer(keys.app, name="key")
app.add_typer(domains.app, name="domain")
app.command()(server.demo)
app.add_typer(workspaces.app, name="workspace")
app.add_typer(suppressions.app, name="suppression")
app.add_typer(templates.app, name="template")
app.command()(bounces.reclassify)
app.add_typer(usecases.app, name="usecase")
