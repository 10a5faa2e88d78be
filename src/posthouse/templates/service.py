"""Stored templates: add, update (a new version), publish, delete, show, preview.

Rules: versions are immutable and numbered from 1; ``add`` publishes version 1, an
update makes a new version that is published only when asked; a send uses the published
version unless it names one. Every part is compiled when saved, so a template that does
not compile is never stored. Another workspace's template is "not found", exactly like
one that does not exist. Nothing here commits.
"""

import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from ulid import ULID

from posthouse.addresses import has_control_characters
from posthouse.db.base import utcnow
from posthouse.db.models import Template, TemplateVersion
from posthouse.errors import TemplateInvalid, TemplateNotFound, ValidationFailed
from posthouse.sending.validation import DEFAULT_LIMITS
from posthouse.templates.rendering import CompiledTemplate, Rendered, TemplateParts, compile_parts
from posthouse.templates.repository import TemplateRepository
from posthouse.ttl_cache import TtlCache

TEMPLATE_PREFIX = "tpl_"
MAX_NAME = 200


def public_id(template_id: uuid.UUID) -> str:
    return TEMPLATE_PREFIX + str(ULID.from_uuid(template_id))


# Template and version numbers are INTEGER columns on both databases: a larger number
# names nothing (and would not fit a query's parameter).
MAX_NUMBER = 2**31 - 1


def _numbered(number: int | None) -> bool:
    return number is None or 0 < number <= MAX_NUMBER


def parse_ref(ref: str | int) -> uuid.UUID | int | None:
    """``tpl_<ULID>`` as its UUID, a workspace number (``7`` or ``"7"``) as an int."""
    if isinstance(ref, int) and not isinstance(ref, bool):
        return ref if _numbered(ref) else None
    if not isinstance(ref, str):
        return None
    if ref.isdecimal() and ref.isascii() and len(ref) <= 9:
        return int(ref) or None
    if ref.startswith(TEMPLATE_PREFIX) and len(ref) == len(TEMPLATE_PREFIX) + 26:
        try:
            return ULID.from_str(ref[len(TEMPLATE_PREFIX) :].upper()).to_uuid()
        except ValueError:
            return None
    return None


@dataclass(frozen=True)
class TemplateDetail:
    template: Template
    version: TemplateVersion  # the one asked for, else the published one, else the latest
    versions: list[int]


@dataclass(frozen=True)
class Preview:
    rendered: Rendered
    missing: list[str]


async def add_template(
    session: AsyncSession, *, workspace_id: uuid.UUID, name: str, parts: TemplateParts
) -> TemplateDetail:
    """Store a template as version 1, published."""
    name = _name(name)
    _check(parts)
    templates = TemplateRepository(session)
    now = utcnow()
    template = Template(
        workspace_id=workspace_id,
        number=await templates.next_number(workspace_id),
        name=name,
        latest_version=1,
        published_version=1,
        created_at=now,
        updated_at=now,
    )
    await templates.add(template)  # flushed: the version needs its id
    version = _version(template, 1, parts)
    await templates.add(version)
    return TemplateDetail(template, version, [1])


async def update_template(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    ref: str | int,
    name: str | None = None,
    changes: Mapping[str, str | None] | None = None,
    publish: bool = False,
) -> TemplateDetail:
    """A new version: the latest one with ``changes`` (subject, html, text) applied.
    A name alone makes no version. ``publish`` publishes the new version."""
    templates = TemplateRepository(session)
    template = await _template(templates, workspace_id, ref)
    if name is not None:
        template.name = _name(name)
    latest = await templates.version(template.id, template.latest_version)
    assert latest is not None  # every template has its latest version
    version = latest
    if changes:
        unknown = set(changes) - {"subject", "html", "text"}
        if unknown:
            raise ValidationFailed(f"unknown parts: {', '.join(sorted(unknown))}")
        current = {"subject": latest.subject, "html": latest.html, "text": latest.text}
        parts = TemplateParts(**{**current, **changes})
        _check(parts)
        template.latest_version += 1
        version = _version(template, template.latest_version, parts)
        await templates.add(version)
    if publish:
        template.published_version = version.version
    template.updated_at = utcnow()
    await session.flush()
    return TemplateDetail(template, version, await templates.version_numbers(template.id))


async def publish_template(
    session: AsyncSession, *, workspace_id: uuid.UUID, ref: str | int, version: int | None = None
) -> TemplateDetail:
    """Sends use ``version`` (by default the latest) from now on."""
    templates = TemplateRepository(session)
    template = await _template(templates, workspace_id, ref)
    wanted = version or template.latest_version
    chosen = await templates.version(template.id, wanted) if _numbered(wanted) else None
    if chosen is None:
        raise TemplateNotFound(f"template {ref} has no version {version}")
    template.published_version = chosen.version
    template.updated_at = utcnow()
    await session.flush()
    return TemplateDetail(template, chosen, await templates.version_numbers(template.id))


async def delete_template(
    session: AsyncSession, *, workspace_id: uuid.UUID, ref: str | int
) -> None:
    """Gone for new sends and for the API; mail already accepted still renders from its
    version, and the number is not given to another template."""
    template = await _template(TemplateRepository(session), workspace_id, ref)
    template.deleted_at = utcnow()
    await session.flush()


async def get_template(
    session: AsyncSession, *, workspace_id: uuid.UUID, ref: str | int, version: int | None = None
) -> TemplateDetail:
    templates = TemplateRepository(session)
    template = await _template(templates, workspace_id, ref)
    shown = await _version_of(templates, template, version, ref=ref)
    return TemplateDetail(template, shown, await templates.version_numbers(template.id))


async def list_templates(session: AsyncSession, *, workspace_id: uuid.UUID) -> list[Template]:
    return await TemplateRepository(session).for_workspace(workspace_id)


async def preview(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    ref: str | int,
    version: int | None,
    variables: Mapping[str, Any],
) -> Preview:
    """What a send with ``variables`` would get, and the variables it lacks (rendered
    empty here; a send without them is refused)."""
    templates = TemplateRepository(session)
    template = await _template(templates, workspace_id, ref)
    chosen = await _version_of(templates, template, version, ref=ref)
    compiled = compiled_version(chosen)
    return Preview(compiled.render(variables), compiled.missing(variables))


# Versions a send resolved, by (workspace, template id or number, version asked): an
# api process reuses them for a moment, so a send reads no template rows; a publish or
# delete reaches every process within the cache's ttl (POSTHOUSE_AUTH_CACHE_SECONDS).
VersionCache = TtlCache[tuple[uuid.UUID, uuid.UUID | int, int | None], TemplateVersion]


async def version_for_send(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    ref: str | int,
    version: int | None,
    cache: VersionCache | None = None,
) -> TemplateVersion:
    """The version a send uses: the one it names, else the published one."""
    parsed = parse_ref(ref)
    if parsed is None or not _numbered(version):
        raise TemplateNotFound(f"template {ref} not found")
    key = (workspace_id, parsed, version)
    found = cache.get(key) if cache is not None else None
    if found is None:
        by = {"id": parsed} if isinstance(parsed, uuid.UUID) else {"number": parsed}
        found = await TemplateRepository(session).version_to_send(
            workspace_id, version=version, **by
        )
        if found is None:
            raise TemplateNotFound(
                f"template {ref} not found"
                if version is None
                else f"template {ref} has no version {version}"
            )
        if cache is not None:
            cache.put(key, found)
    return found


class _CompiledVersions:
    """Compiled templates by version id: versions never change, so a version is compiled
    once per process however many messages use it."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[uuid.UUID, CompiledTemplate] = OrderedDict()

    def get(self, version: TemplateVersion) -> CompiledTemplate:
        compiled = self._entries.get(version.id)
        if compiled is None:
            compiled = compile_parts(TemplateParts(version.subject, version.html, version.text))
            self._entries[version.id] = compiled
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(version.id)
        return compiled


compiled_version = _CompiledVersions(256).get


async def _template(
    templates: TemplateRepository, workspace_id: uuid.UUID, ref: str | int
) -> Template:
    parsed = parse_ref(ref)
    template = None
    if isinstance(parsed, uuid.UUID):
        template = await templates.get(workspace_id, id=parsed)
    elif isinstance(parsed, int):
        template = await templates.get(workspace_id, number=parsed)
    if template is None:
        raise TemplateNotFound(f"template {ref} not found")
    return template


async def _version_of(
    templates: TemplateRepository, template: Template, number: int | None, *, ref: str | int
) -> TemplateVersion:
    wanted = number or template.published_version or template.latest_version
    version = await templates.version(template.id, wanted) if _numbered(wanted) else None
    if version is None:
        raise TemplateNotFound(f"template {ref} has no version {number}")
    return version


def _version(template: Template, number: int, parts: TemplateParts) -> TemplateVersion:
    return TemplateVersion(
        template_id=template.id,
        version=number,
        subject=parts.subject,
        html=parts.html,
        text=parts.text,
        created_at=utcnow(),
    )


def _name(name: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValidationFailed("name is required", field="name")
    if has_control_characters(name) or len(name) > MAX_NAME:
        raise ValidationFailed(
            f"name must be one line of at most {MAX_NAME} characters", field="name"
        )
    return name.strip()


def _check(parts: TemplateParts) -> None:
    """Refuse what could never be sent: no body, a subject of several lines, parts over
    the size of a send's body, anything that does not compile."""
    if not parts.html and not parts.text:
        raise ValidationFailed("a template needs html or text", field="html")
    if parts.subject is not None and (
        has_control_characters(parts.subject) or len(parts.subject) > DEFAULT_LIMITS.max_subject
    ):
        raise TemplateInvalid(
            "subject: must be one line of at most 998 characters",
            part="subject",
            line=1,
            error="must be one line of at most 998 characters",
        )
    for field, value in (("html", parts.html), ("text", parts.text)):
        if value is not None and len(value.encode()) > DEFAULT_LIMITS.max_body_bytes:
            raise ValidationFailed(f"{field} is larger than 5 MB", field=field)
    compile_parts(parts)
