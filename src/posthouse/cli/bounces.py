"""``posthouse reclassify``: stored failures classified again (docs/bounces.md)."""

from typing import Annotated

import typer

from posthouse.cli.common import run
from posthouse.config import get_settings


def reclassify(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count, change nothing.")] = False,
) -> None:
    """Classify stored failures again (docs/bounces.md) and lift the suppressions and
    bounce-rate suspensions that bounces no longer hard had caused."""
    from posthouse.delivery.reclassify import run as reclassify_stored

    report = run(lambda: reclassify_stored(get_settings().database_url, dry_run=dry_run))
    for line in report.lines():
        typer.echo(line)
    if dry_run:
        typer.echo("dry run: nothing was changed")
