"""The ``posthouse`` command line."""

import asyncio
import json
import logging
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import uvicorn

from posthouse.config import Settings, get_settings
from posthouse.db.engine import create_engine, create_sessionmaker

app = typer.Typer(
    help="posthouse: a self-hosted transactional email API server.", no_args_is_help=True
)
sender_app = typer.Typer(help="Manage senders and their tokens.", no_args_is_help=True)
app.add_typer(sender_app, name="sender")
key_app = typer.Typer(help="Manage workspace API keys.", no_args_is_help=True)
app.add_typer(key_app, name="key")

T = TypeVar("T")

HostOption = Annotated[str, typer.Option(help="Address to listen on.")]
PortOption = Annotated[int, typer.Option(help="Port to listen on.")]


def _logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def _run(main: Callable[[], Awaitable[T]]) -> T:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main())
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main())


async def _with_session(settings: Settings, work: Callable[[Any], Awaitable[T]]) -> T:
    engine = create_engine(settings.database_url, null_pool=True)
    try:
        async with create_sessionmaker(engine).begin() as session:
            return await work(session)
    finally:
        await engine.dispose()


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema (Alembic migrations)."""
    from posthouse.db.migrate import upgrade

    upgrade(get_settings().database_url)
    typer.echo("database is up to date")


@app.command()
def serve(host: HostOption = "127.0.0.1", port: PortOption = 8025) -> None:
    """Run the API and the delivery worker in one process (the embedded default)."""
    from posthouse.app import create_app

    _logging()
    uvicorn.run(create_app(embedded_worker=True), host=host, port=port, log_level="info")


@app.command()
def api(
    host: HostOption = "127.0.0.1",
    port: PortOption = 8025,
    workers: Annotated[int, typer.Option(help="Number of API processes.")] = 1,
) -> None:
    """Run the HTTP API only (production: several processes, PostgreSQL)."""
    _logging()
    uvicorn.run(
        "posthouse.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
    )


@app.command()
def worker(
    once: Annotated[bool, typer.Option(help="Deliver what is due, then exit.")] = False,
) -> None:
    """Run a delivery worker (any number of them, against PostgreSQL)."""
    from posthouse.delivery.transports.factory import create_transport
    from posthouse.delivery.worker import Worker

    _logging()
    settings = get_settings()
    settings.check_production_secrets()

    async def main() -> None:
        engine = create_engine(settings.database_url)
        transport = create_transport(settings)
        runner = Worker(
            sessionmaker=create_sessionmaker(engine), transport=transport, settings=settings
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        try:
            if once:
                count = await runner.run_until_idle()
                typer.echo(f"{count} delivery attempts")
            else:
                logging.getLogger("posthouse").info("worker %s started", runner.owner)
                await runner.run(stop)
        finally:
            await transport.close()
            await engine.dispose()

    _run(main)


@sender_app.command("add")
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
        issued = _run(
            lambda: _with_session(
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


@key_app.command("create")
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
    issued = _run(
        lambda: _with_session(
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


@app.command()
def demo(
    credentials_file: Annotated[Path, typer.Option(help="Where the demo tokens are kept.")] = Path(
        "var/demo-credentials.json"
    ),
    url: Annotated[
        str, typer.Option(help="The URL posthouse serve listens on.")
    ] = "http://127.0.0.1:8025",
) -> None:
    """Create a demo workspace and sender when missing and print a ready-to-paste curl."""
    from posthouse.accounts.service import add_sender

    settings = get_settings()
    if credentials_file.exists():
        saved = json.loads(credentials_file.read_text())
    else:
        issued = _run(
            lambda: _with_session(
                settings,
                lambda s: add_sender(
                    s, workspace_name="demo", email="no-reply@demo.posthouse.example"
                ),
            )
        )
        saved = {
            "email": issued.sender.email,
            "accessToken": issued.access_token,
            "secretToken": issued.secret_token,
        }
        credentials_file.parent.mkdir(parents=True, exist_ok=True)
        credentials_file.touch(mode=0o600)
        credentials_file.write_text(json.dumps(saved, indent=2))
    typer.echo(
        f"""
posthouse listens on {url}  (API docs: {url}/docs)
Mail is delivered into {settings.delivery_url.removeprefix("maildir:")} (one file per recipient).

Demo sender {saved["email"]}
  access token: {saved["accessToken"]}
  secret token: {saved["secretToken"]}

Send an email (seed 000's first example):

curl -X POST "{url}/api/v1/emails" \\
  -H "X-Api-Access-Token: {saved["accessToken"]}" \\
  -H "X-Api-Secret-Token: {saved["secretToken"]}" \\
  -F 'payload={{
    "from":"{saved["email"]}",
    "to":["alice@example.com","bob@example.com"],
    "subject":"Welcome to our store!",
    "body":"<h1>Thanks for joining</h1>"
  }};type=application/json'
"""
    )
