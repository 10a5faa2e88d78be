"""``posthouse workspace``: workspaces and their protections."""

import json
from typing import Annotated, Any

import typer

from posthouse.cli.common import (
    session_command,
)

app = typer.Typer(help="Manage workspaces and their protections.", no_args_is_help=True)

WorkspaceName = Annotated[str, typer.Argument(help="The workspace's name.")]


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
    print_blocks(report["blocks"])


def print_blocks(blocks: list[dict[str, Any]]) -> None:
    """Destinations blocking the mail, one line each (also ``posthouse domain show``)."""
    from posthouse.delivery.blocks import describe

    for block in blocks:
        typer.echo(f"{block['sendingDomain']}: {describe(block)}")


@app.command("create")
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

    _print_workspace(session_command(work), as_json=as_json)


@app.command("update")
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
    track_opens: Annotated[
        bool | None,
        typer.Option("--track-opens/--no-track-opens", help="Default for emails that do not say."),
    ] = None,
    track_clicks: Annotated[
        str | None, typer.Option(help="Default click tracking: none, html, text or both.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Change a workspace's quota, rate thresholds, engagement defaults, or lift its
    suspension."""
    from posthouse.workspaces import service as workspaces

    changes = workspaces.WorkspaceChanges(
        monthly_quota=monthly_quota,
        max_bounce_rate=max_bounce_rate,
        max_complaint_rate=max_complaint_rate,
        rate_min_volume=rate_min_volume,
        rate_window_days=rate_window_days,
        unsuspend=unsuspend,
        track_opens=track_opens,
        track_clicks=track_clicks,
    )

    async def work(session: Any) -> dict[str, Any]:
        await workspaces.update(session, name=name, changes=changes)
        return await workspaces.report(session, name=name)

    _print_workspace(session_command(work), as_json=as_json)


@app.command("show")
def workspace_show(
    name: WorkspaceName,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Usage this month, bounce and complaint rates, and suspension."""
    from posthouse.workspaces import service as workspaces

    _print_workspace(
        session_command(lambda session: workspaces.report(session, name=name)), as_json=as_json
    )
