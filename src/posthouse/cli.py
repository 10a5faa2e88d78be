"""The ``posthouse`` command line."""

import asyncio
import json
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine
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
domain_app = typer.Typer(
    help="Manage sending domains, their DNS records and DKIM keys.", no_args_is_help=True
)
app.add_typer(domain_app, name="domain")

T = TypeVar("T")

HostOption = Annotated[str, typer.Option(help="Address to listen on.")]
PortOption = Annotated[int, typer.Option(help="Port to listen on.")]


def _logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def _run(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
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
    """Run the API, the delivery worker and the inbound (bounce) listener in one process."""
    from posthouse.app import create_app

    _logging()
    uvicorn.run(
        create_app(embedded_worker=True, server=True), host=host, port=port, log_level="info"
    )


@app.command()
def api(
    host: HostOption = "127.0.0.1",
    port: PortOption = 8025,
    workers: Annotated[int, typer.Option(help="Number of API processes.")] = 1,
) -> None:
    """Run the HTTP API only (production: several processes, PostgreSQL)."""
    _logging()
    uvicorn.run(
        "posthouse.app:create_server_app",
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
    from posthouse.heap import freeze_startup_heap

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
        freeze_startup_heap()
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


@app.command()
def inbound(
    bind: Annotated[
        str | None, typer.Option(help="host:port to listen on (POSTHOUSE_INBOUND_BIND).")
    ] = None,
) -> None:
    """Receive bounces and complaints (DSN, ARF) for the return-path domains over SMTP."""
    from posthouse.inbound.listener import InboundServer

    _logging()
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


DomainArgument = Annotated[str, typer.Argument(help="The sending domain, e.g. example.com.")]
WorkspaceOption = Annotated[
    str | None, typer.Option(help="Workspace name; needed only when several hold the domain.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


def _domain_command(
    work: Callable[[Any, Any], Awaitable[Any]], *, domain: str, workspace: str | None
) -> Any:
    """Run ``work(session, workspace_id)`` in one transaction; errors exit with status 2."""
    from posthouse.domains import service as domains_service
    from posthouse.errors import PosthouseError

    async def run(session: Any) -> Any:
        workspace_id = await domains_service.workspace_for(
            session, domain=domain, workspace_name=workspace
        )
        return await work(session, workspace_id)

    try:
        return _run(lambda: _with_session(get_settings(), run))
    except PosthouseError as error:
        typer.echo(f"error: {error.detail}", err=True)
        raise typer.Exit(2) from None


def _print_domain(detail: Any, *, as_json: bool) -> None:
    from posthouse.domains.schemas import domain_read

    shown = domain_read(detail)
    if as_json:
        typer.echo(shown.model_dump_json(indent=2))
        return
    state = "verified" if shown.verified else "NOT verified"
    typer.echo(f"domain:       {shown.name} ({state})")
    typer.echo(f"return path:  {shown.returnPathDomain}")
    for key in shown.dkimSelectors:
        typer.echo(f"DKIM selector {key.selector}{' (active)' if key.active else ''}")
    typer.echo("\nDNS records to publish:")
    for record in shown.records:
        mark = "ok" if record.verified else "missing" if record.checkedAt else "pending"
        optional = "" if record.required else "  (not required until activated)"
        typer.echo(f"  [{mark:<7}] {record.purpose:<11} {record.type:<3} {record.name}{optional}")
        typer.echo(f"            {record.value}")
        if record.detail and not record.verified:
            typer.echo(f"            last check: {record.detail}")


@domain_app.command("add")
def domain_add(
    domain: DomainArgument,
    workspace: Annotated[str, typer.Option(help="Workspace name (created when missing).")] = (
        "default"
    ),
    return_path: Annotated[
        str | None, typer.Option(help="Bounce domain, a subdomain (default bounces.DOMAIN).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create a domain with a 2048-bit DKIM key and print the DNS records to publish."""
    from posthouse.accounts.service import get_or_create_workspace
    from posthouse.domains import service as domains_service
    from posthouse.errors import PosthouseError

    settings = get_settings()

    async def add(session: Any) -> Any:
        owner = await get_or_create_workspace(session, name=workspace)
        return await domains_service.add_domain(
            session,
            workspace_id=owner.id,
            name=domain,
            mail_host=domains_service.mail_host(settings),
            return_path_domain=return_path,
        )

    try:
        detail = _run(lambda: _with_session(settings, add))
    except PosthouseError as error:
        typer.echo(f"error: {error.detail}", err=True)
        raise typer.Exit(2) from None
    _print_domain(detail, as_json=as_json)
    if not as_json:
        typer.echo(f"\nOnce published: posthouse domain verify {detail.domain.name}")


@domain_app.command("verify")
def domain_verify(
    domain: DomainArgument, workspace: WorkspaceOption = None, as_json: JsonOption = False
) -> None:
    """Look the domain's records up in DNS and store what was seen (exit 1: not verified)."""
    from posthouse.domains import service as domains_service

    settings = get_settings()
    detail = _domain_command(
        lambda session, workspace_id: domains_service.verify_domain(
            session,
            workspace_id=workspace_id,
            name=domain,
            resolver=domains_service.verification_resolver(settings),
        ),
        domain=domain,
        workspace=workspace,
    )
    _print_domain(detail, as_json=as_json)
    if detail.domain.verified_at is None:
        raise typer.Exit(1)


@domain_app.command("show")
def domain_show(
    domain: DomainArgument, workspace: WorkspaceOption = None, as_json: JsonOption = False
) -> None:
    """Print the domain's records and their state as last checked."""
    from posthouse.domains import service as domains_service

    detail = _domain_command(
        lambda session, workspace_id: domains_service.get_domain(
            session, workspace_id=workspace_id, name=domain
        ),
        domain=domain,
        workspace=workspace,
    )
    _print_domain(detail, as_json=as_json)


@domain_app.command("rotate-dkim")
def domain_rotate_dkim(
    domain: DomainArgument, workspace: WorkspaceOption = None, as_json: JsonOption = False
) -> None:
    """Add a new DKIM selector beside the active one; publish it, then activate it."""
    from posthouse.domains import service as domains_service

    detail = _domain_command(
        lambda session, workspace_id: domains_service.rotate_dkim(
            session, workspace_id=workspace_id, name=domain
        ),
        domain=domain,
        workspace=workspace,
    )
    _print_domain(detail, as_json=as_json)


@domain_app.command("activate-dkim")
def domain_activate_dkim(
    domain: DomainArgument,
    selector: Annotated[str, typer.Argument(help="The selector to sign with from now on.")],
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Sign with SELECTOR from now on, once DNS shows its record. Keep the old record
    published for a few days: mail signed with the old key may still be in transit."""
    from posthouse.domains import service as domains_service

    settings = get_settings()
    detail = _domain_command(
        lambda session, workspace_id: domains_service.activate_dkim(
            session,
            workspace_id=workspace_id,
            name=domain,
            selector=selector,
            resolver=domains_service.verification_resolver(settings),
        ),
        domain=domain,
        workspace=workspace,
    )
    _print_domain(detail, as_json=as_json)


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


workspace_app = typer.Typer(help="Manage workspaces and their protections.", no_args_is_help=True)
app.add_typer(workspace_app, name="workspace")
suppression_app = typer.Typer(help="Manage a workspace's suppression list.", no_args_is_help=True)
app.add_typer(suppression_app, name="suppression")

WorkspaceName = Annotated[str, typer.Argument(help="The workspace's name.")]
SuppressionWorkspace = Annotated[str, typer.Option("--workspace", help="The workspace's name.")]


def _session_command(work: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``work(session)`` in one transaction; domain errors exit with status 2."""
    from posthouse.errors import PosthouseError

    try:
        return _run(lambda: _with_session(get_settings(), work))
    except PosthouseError as error:
        typer.echo(f"error: {error.detail}", err=True)
        raise typer.Exit(2) from None


def _print_workspace(report: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(report))
        return
    rates = report["rates"]
    quota = report["monthlyQuota"]
    typer.echo(f"workspace:       {report['name']}")
    typer.echo(f"usage (month):   {report['usageThisMonth']} / {quota or 'unlimited'}")
    typer.echo(f"bounce rate:     {rates['bounceRate']:.2%} (max {report['maxBounceRate']:.2%})")
    typer.echo(
        f"complaint rate:  {rates['complaintRate']:.2%} (max {report['maxComplaintRate']:.2%})"
    )
    judged = "judged" if rates["judged"] else f"not judged below {report['rateMinVolume']}"
    typer.echo(f"volume:          {rates['volume']} since {rates['since']} ({judged})")
    if report["suspended"]:
        typer.echo(f"suspended:       since {report['suspendedAt']}: {report['suspensionReason']}")
    else:
        typer.echo("suspended:       no")


@workspace_app.command("create")
def workspace_create(
    name: WorkspaceName,
    monthly_quota: Annotated[
        int | None, typer.Option(help="Recipients per calendar month (UTC).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Create a workspace."""
    from posthouse.workspaces import service as workspaces

    async def work(session: Any) -> dict[str, Any]:
        await workspaces.create(session, name=name, monthly_quota=monthly_quota)
        return await workspaces.report(session, name=name)

    _print_workspace(_session_command(work), as_json=as_json)


@workspace_app.command("update")
def workspace_update(
    name: WorkspaceName,
    monthly_quota: Annotated[
        int | None, typer.Option(help="Recipients per calendar month (UTC); 0 removes it.")
    ] = None,
    max_bounce_rate: Annotated[
        float | None, typer.Option(help="Hard-bounce rate that suspends, e.g. 0.05.")
    ] = None,
    max_complaint_rate: Annotated[
        float | None, typer.Option(help="Complaint rate that suspends, e.g. 0.001.")
    ] = None,
    rate_min_volume: Annotated[
        int | None, typer.Option(help="Deliveries in the window before rates are judged.")
    ] = None,
    rate_window_days: Annotated[
        int | None, typer.Option(help="The rolling window rates are computed over.")
    ] = None,
    unsuspend: Annotated[
        bool, typer.Option("--unsuspend", help="Lift a suspension and release held mail.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Change a workspace's quota, rate thresholds, or lift its suspension."""
    from posthouse.workspaces import service as workspaces

    changes = workspaces.WorkspaceChanges(
        monthly_quota=monthly_quota,
        max_bounce_rate=max_bounce_rate,
        max_complaint_rate=max_complaint_rate,
        rate_min_volume=rate_min_volume,
        rate_window_days=rate_window_days,
        unsuspend=unsuspend,
    )

    async def work(session: Any) -> dict[str, Any]:
        await workspaces.update(session, name=name, changes=changes)
        return await workspaces.report(session, name=name)

    _print_workspace(_session_command(work), as_json=as_json)


@workspace_app.command("show")
def workspace_show(
    name: WorkspaceName,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Usage this month, bounce and complaint rates, and suspension."""
    from posthouse.workspaces import service as workspaces

    _print_workspace(
        _session_command(lambda session: workspaces.report(session, name=name)), as_json=as_json
    )


def _suppression_json(entry: Any) -> dict[str, Any]:
    return {
        "address": entry.address,
        "reason": entry.reason,
        "createdAt": entry.created_at.isoformat(),
        "expiresAt": entry.expires_at.isoformat() if entry.expires_at else None,
        "sourceEventId": str(entry.source_event_id) if entry.source_event_id else None,
        "createdBy": entry.created_by,
    }


@suppression_app.command("list")
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

    entries = _session_command(work)
    if as_json:
        typer.echo(json.dumps(entries))
        return
    for entry in entries:
        typer.echo(f"{entry['address']}\t{entry['reason']}\t{entry['createdAt']}")


@suppression_app.command("add")
def suppression_add(
    address: Annotated[str, typer.Argument(help="The address to stop sending to.")],
    workspace: SuppressionWorkspace,
    reason: Annotated[str, typer.Option(help="hard_bounce, complaint, unsubscribe or manual.")] = (
        "manual"
    ),
    expires_at: Annotated[
        str | None, typer.Option(help="When the entry lapses (ISO 8601; UTC if no offset).")
    ] = None,
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
        )

    entry = _session_command(work)
    typer.echo(f"suppressed {entry.address} ({entry.reason})")


@suppression_app.command("remove")
def suppression_remove(
    address: Annotated[str, typer.Argument(help="The address to send to again.")],
    workspace: SuppressionWorkspace,
) -> None:
    """Remove an address from the suppression list."""
    from posthouse.protections import suppression
    from posthouse.workspaces import service as workspaces

    async def work(session: Any) -> None:
        await suppression.remove(
            session,
            workspace_id=await workspaces.workspace_id(session, name=workspace),
            address=address,
        )

    _session_command(work)
    typer.echo(f"removed {address}")
