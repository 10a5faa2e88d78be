"""``posthouse domain``: sending domains, their DNS records and DKIM keys."""

import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import typer

from posthouse.cli.common import (
    run,
    with_session,
)
from posthouse.cli.workspaces import print_blocks
from posthouse.config import get_settings

app = typer.Typer(
    help="Manage sending domains, their DNS records and DKIM keys.", no_args_is_help=True
)

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

    async def in_workspace(session: Any) -> Any:
        workspace_id = await domains_service.workspace_for(
            session, domain=domain, workspace_name=workspace
        )
        return await work(session, workspace_id)

    try:
        return run(lambda: with_session(get_settings(), in_workspace))
    except PosthouseError as error:
        typer.echo(f"error: {error.detail}", err=True)
        raise typer.Exit(2) from None


def _print_domain(
    detail: Any, *, as_json: bool, blocks: list[dict[str, Any]] | None = None
) -> None:
    from posthouse.domains.schemas import domain_read

    shown = domain_read(detail)
    if as_json:
        if blocks is None:
            typer.echo(shown.model_dump_json(indent=2))
        else:
            typer.echo(json.dumps({**shown.model_dump(mode="json"), "blocks": blocks}, indent=2))
        return
    state = "verified" if shown.verified else "NOT verified"
    typer.echo(f"domain:       {shown.name} ({state})")
    typer.echo(f"return path:  {shown.returnPathDomain}")
    for key in shown.dkimSelectors:
        typer.echo(f"DKIM selector {key.selector}{' (active)' if key.active else ''}")
    typer.echo("\nDNS records to publish:")
    for record in shown.records:
        mark = "ok" if record.verified else "missing" if record.checkedAt else "pending"
        optional = (
            ""
            if record.required
            else "  (recommended)"
            if record.purpose == "spf_helo"
            else "  (not required until activated)"
        )
        typer.echo(f"  [{mark:<7}] {record.purpose:<11} {record.type:<3} {record.name}{optional}")
        typer.echo(f"            {record.value}")
        if record.detail and not record.verified:
            typer.echo(f"            last check: {record.detail}")
    if blocks:
        typer.echo("")
        print_blocks(blocks)


@app.command("add")
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
        detail = run(lambda: with_session(settings, add))
    except PosthouseError as error:
        typer.echo(f"error: {error.detail}", err=True)
        raise typer.Exit(2) from None
    _print_domain(detail, as_json=as_json)
    if not as_json:
        typer.echo(f"\nOnce published: posthouse domain verify {detail.domain.name}")


@app.command("verify")
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


@app.command("show")
def domain_show(
    domain: DomainArgument, workspace: WorkspaceOption = None, as_json: JsonOption = False
) -> None:
    """Print the domain's records and their state as last checked, and who blocks its mail."""
    from posthouse.delivery import blocks
    from posthouse.domains import service as domains_service

    async def show(session: Any, workspace_id: Any) -> tuple[Any, list[dict[str, Any]]]:
        detail = await domains_service.get_domain(session, workspace_id=workspace_id, name=domain)
        blocked = await blocks.listed(
            session, workspace_id=workspace_id, sending_domain=detail.domain.name
        )
        return detail, blocked

    detail, blocked = _domain_command(show, domain=domain, workspace=workspace)
    _print_domain(detail, as_json=as_json, blocks=blocked)


@app.command("rotate-dkim")
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


@app.command("activate-dkim")
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
