"""``posthouse template ...``: stored templates from the command line.

ID is a template's ``tpl_<ULID>`` or its number in the workspace. ``--json`` prints one
JSON object (``list``: one array). Errors print ``error: ...`` and exit with status 2.
"""

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from posthouse.cli.common import session_command
from posthouse.templates.rendering import TemplateParts

app = typer.Typer(help="Manage stored templates and their versions.", no_args_is_help=True)

WorkspaceOption = Annotated[str, typer.Option("--workspace", help="The workspace's name.")]
IdArgument = Annotated[str, typer.Argument(help="tpl_<ULID>, or the template's number.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
FileOption = Annotated[
    Path | None, typer.Option(exists=True, dir_okay=False, readable=True, help="A UTF-8 file.")
]


def _read(path: Path | None) -> str | None:
    return path.read_text(encoding="utf-8") if path is not None else None


def _ids(detail: Any) -> dict[str, Any]:
    from posthouse.templates.service import public_id

    return {
        "id": public_id(detail.template.id),
        "number": detail.template.number,
        "version": detail.version.version,
    }


def _print_template(detail: Any, *, as_json: bool) -> None:
    from posthouse.templates.schemas import template_read

    shown = template_read(detail)
    if as_json:
        typer.echo(shown.model_dump_json(indent=2))
        return
    published = shown.publishedVersion or "none"
    typer.echo(f"template:   {shown.id} (number {shown.number}) {shown.name}")
    typer.echo(f"versions:   {', '.join(map(str, shown.versions))}; published: {published}")
    typer.echo(f"shown:      version {shown.version}")
    for part in ("subject", "html", "text"):
        value = getattr(shown, part)
        if value is not None:
            typer.echo(f"--- {part}\n{value}")


@app.command("add")
def template_add(
    workspace: WorkspaceOption,
    name: Annotated[str, typer.Option(help="A label for the template.")],
    html_file: FileOption = None,
    subject: Annotated[str | None, typer.Option(help="The subject, a template too.")] = None,
    text_file: FileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Store a template (version 1, published); the workspace is created when missing."""
    from posthouse.accounts.service import get_or_create_workspace
    from posthouse.templates import service

    parts = TemplateParts(subject, _read(html_file), _read(text_file))

    async def work(session: Any) -> Any:
        owner = await get_or_create_workspace(session, name=workspace)
        return await service.add_template(session, workspace_id=owner.id, name=name, parts=parts)

    ids = _ids(session_command(work))
    if as_json:
        typer.echo(json.dumps(ids))
        return
    typer.echo(f"added template {ids['id']} (number {ids['number']}), version 1 published")


@app.command("list")
def template_list(
    workspace: WorkspaceOption,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """The workspace's templates, by number."""
    from posthouse.templates import service
    from posthouse.templates.schemas import template_summary
    from posthouse.workspaces import service as workspaces

    async def work(session: Any) -> Any:
        workspace_id = await workspaces.workspace_id(session, name=workspace)
        return await service.list_templates(session, workspace_id=workspace_id)

    summaries = [template_summary(t) for t in session_command(work)]
    if as_json:
        typer.echo(json.dumps([s.model_dump(mode="json") for s in summaries]))
        return
    for s in summaries:
        typer.echo(f"{s.number}\t{s.id}\tv{s.publishedVersion or '-'}/{s.latestVersion}\t{s.name}")


@app.command("show")
def template_show(
    id: IdArgument,
    workspace: WorkspaceOption,
    version: Annotated[int | None, typer.Option(help="Default: the published version.")] = None,
    as_json: JsonOption = False,
) -> None:
    """A version of the template and the list of its versions."""
    from posthouse.templates import service
    from posthouse.workspaces import service as workspaces

    async def work(session: Any) -> Any:
        workspace_id = await workspaces.workspace_id(session, name=workspace)
        return await service.get_template(
            session, workspace_id=workspace_id, ref=id, version=version
        )

    _print_template(session_command(work), as_json=as_json)


@app.command("update")
def template_update(
    id: IdArgument,
    workspace: WorkspaceOption,
    name: Annotated[str | None, typer.Option(help="A new label.")] = None,
    subject: Annotated[str | None, typer.Option(help="A new subject.")] = None,
    html_file: FileOption = None,
    text_file: FileOption = None,
    publish: Annotated[bool, typer.Option("--publish", help="Publish the new version.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Make a new version from the latest with the parts given (versions never change)."""
    from posthouse.templates import service
    from posthouse.workspaces import service as workspaces

    changes = {
        part: value
        for part, value in (
            ("subject", subject),
            ("html", _read(html_file)),
            ("text", _read(text_file)),
        )
        if value is not None
    }

    async def work(session: Any) -> Any:
        workspace_id = await workspaces.workspace_id(session, name=workspace)
        return await service.update_template(
            session,
            workspace_id=workspace_id,
            ref=id,
            name=name,
            changes=changes,
            publish=publish,
        )

    detail = session_command(work)
    ids = {**_ids(detail), "publishedVersion": detail.template.published_version}
    if as_json:
        typer.echo(json.dumps(ids))
        return
    typer.echo(
        f"template {ids['id']}: version {ids['version']}, published {ids['publishedVersion']}"
    )


@app.command("publish")
def template_publish(
    id: IdArgument,
    workspace: WorkspaceOption,
    version: Annotated[int | None, typer.Option(help="Default: the latest version.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Sends that name no version use VERSION from now on."""
    from posthouse.templates import service
    from posthouse.workspaces import service as workspaces

    async def work(session: Any) -> Any:
        workspace_id = await workspaces.workspace_id(session, name=workspace)
        return await service.publish_template(
            session, workspace_id=workspace_id, ref=id, version=version
        )

    detail = session_command(work)
    ids = {**_ids(detail), "publishedVersion": detail.template.published_version}
    if as_json:
        typer.echo(json.dumps(ids))
        return
    typer.echo(f"template {ids['id']}: version {ids['version']} published")


@app.command("delete")
def template_delete(id: IdArgument, workspace: WorkspaceOption) -> None:
    """New sends can no longer use it; mail already accepted still renders from it."""
    from posthouse.templates import service
    from posthouse.workspaces import service as workspaces

    async def work(session: Any) -> None:
        workspace_id = await workspaces.workspace_id(session, name=workspace)
        await service.delete_template(session, workspace_id=workspace_id, ref=id)

    session_command(work)
    typer.echo(f"deleted template {id}")
