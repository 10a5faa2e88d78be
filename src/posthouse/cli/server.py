"""Processes and set-up: migrate, serve, api, worker, inbound and demo."""

import asyncio
import json
import logging
import signal
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn

from posthouse.cli.common import (
    HostOption,
    PortOption,
    logging_setup,
    run,
    with_session,
)
from posthouse.config import get_settings
from posthouse.db.engine import create_engine, create_sessionmaker
from posthouse.server import uvicorn_options


def migrate() -> None:
    """Create or upgrade the database schema (Alembic migrations)."""
    from posthouse.db.migrate import upgrade

    upgrade(get_settings().database_url)
    typer.echo("database is up to date")


def serve(host: HostOption = "127.0.0.1", port: PortOption = 8025) -> None:
    """Run the API, the delivery worker and the inbound (bounce) listener in one process."""
    from posthouse.app import create_app

    logging_setup()
    uvicorn.run(
        create_app(embedded_worker=True, server=True),
        host=host,
        port=port,
        log_level="info",
        **uvicorn_options(get_settings()),
    )


def api(
    host: HostOption = "127.0.0.1",
    port: PortOption = 8025,
    workers: Annotated[int, typer.Option(help="Number of API processes.")] = 1,
) -> None:
    """Run the HTTP API only (production: several processes, PostgreSQL)."""
    logging_setup()
    options: dict[str, Any] = {"factory": True, "host": host, "port": port, "workers": workers}
    options.update(log_level="warning", access_log=False, **uvicorn_options(get_settings()))
    if workers == 1:
        uvicorn.run("posthouse.app:create_server_app", **options)
        return
    from posthouse import supervisor

    supervisor.run(uvicorn.Config("posthouse.app:create_server_app", **options))


def worker(
    once: Annotated[bool, typer.Option(help="Deliver what is due, then exit.")] = False,
    shutdown_seconds: Annotated[
        float | None,
        typer.Option(
            min=0.1,
            help="On SIGTERM, exit within this many seconds (POSTHOUSE_WORKER_SHUTDOWN_SECONDS,"
            " default 8).",
        ),
    ] = None,
) -> None:
    """Run a delivery worker (any number of them, against PostgreSQL)."""
    from posthouse.delivery.transports.factory import create_transport
    from posthouse.delivery.worker import Worker
    from posthouse.heap import freeze_startup_heap
    from posthouse.templates.personalise import Personaliser

    logging_setup()
    settings = get_settings()
    settings.check_production_secrets()
    if shutdown_seconds is not None:
        settings = settings.model_copy(update={"worker_shutdown_seconds": shutdown_seconds})

    async def main() -> None:
        engine = create_engine(settings.database_url)
        transport = create_transport(settings)
        runner = Worker(
            sessionmaker=create_sessionmaker(engine),
            transport=transport,
            settings=settings,
            recipient_hook=Personaliser(),
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        freeze_startup_heap()
        try:
            if once:
                count = await runner.run_until_idle()
                typer.echo(f"{count} delivery attempts")
            else:
                logging.getLogger("posthouse").info("worker %s started", runner.owner)
                await runner.run(stop)
        finally:
            # Within what the shutdown bound left for it: a server that does not answer
            # QUIT must not hold the exit.
            try:
                async with asyncio.timeout(min(0.5, settings.worker_shutdown_seconds * 0.1)):
                    await transport.close()
            except TimeoutError:
                logging.getLogger("posthouse").warning("closing SMTP connections timed out")
            await engine.dispose()

    run(main)


def inbound(
    bind: Annotated[
        str | None, typer.Option(help="host:port to listen on (POSTHOUSE_INBOUND_BIND).")
    ] = None,
) -> None:
    """Receive bounces and complaints (DSN, ARF) for the return-path domains over SMTP."""
    from posthouse.inbound.listener import InboundServer

    logging_setup()
    settings = get_settings()
    settings.check_production_secrets()
    if bind is not None:
        settings = settings.model_copy(update={"inbound_bind": bind})

    async def main() -> None:
        engine = create_engine(settings.database_url)
        server = await InboundServer(settings, create_sessionmaker(engine)).start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        try:
            await stop.wait()
        finally:
            await server.stop()
            await engine.dispose()

    run(main)


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
        issued = run(
            lambda: with_session(
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
