"""The JSON shapes of templates, shared by the admin API and ``posthouse template --json``."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from posthouse.db.models import Template
from posthouse.templates.service import Preview, TemplateDetail, public_id

PART_DESCRIPTION = "Jinja2 template source: {{ name }} where a value goes"


class TemplateCreate(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    name: str = Field(description="A label, up to 200 characters")
    subject: str | None = Field(None, description=PART_DESCRIPTION + "; one line")
    html: str | None = Field(None, description=PART_DESCRIPTION + "; values are HTML-escaped")
    text: str | None = Field(
        None, description=PART_DESCRIPTION + "; when absent, sends derive it from the HTML"
    )


class TemplateUpdate(BaseModel):
    """Parts given replace the latest version's in a new version; ``null`` removes one."""

    model_config = ConfigDict(strict=True, extra="forbid")

    name: str | None = Field(None, description="A new label (makes no new version)")
    subject: str | None = Field(None, description=PART_DESCRIPTION)
    html: str | None = Field(None, description=PART_DESCRIPTION)
    text: str | None = Field(None, description=PART_DESCRIPTION)
    publish: bool = Field(False, description="Publish the new version at once")

    def changes(self) -> dict[str, str | None]:
        return {
            part: getattr(self, part)
            for part in ("subject", "html", "text")
            if part in self.model_fields_set
        }


class TemplatePublish(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    version: int | None = Field(None, description="The version sends use; default the latest")


class TemplateRenderRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    variables: dict[str, Any] = Field(default_factory=dict, description="Values by name")
    version: int | None = Field(None, description="Default: the published version")


class TemplateSummary(BaseModel):
    id: str = Field(description="tpl_ followed by a ULID")
    number: int = Field(description="The template's number in its workspace, from 1")
    name: str
    latestVersion: int
    publishedVersion: int | None
    updatedAt: datetime


class TemplateRead(TemplateSummary):
    version: int = Field(description="The version shown below")
    versions: list[int]
    subject: str | None
    html: str | None
    text: str | None
    createdAt: datetime


class TemplateRendered(BaseModel):
    subject: str | None
    html: str | None
    text: str | None
    missing: list[str] = Field(description="Variables the template needs that were not given")


def template_summary(template: Template) -> TemplateSummary:
    return TemplateSummary(
        id=public_id(template.id),
        number=template.number,
        name=template.name,
        latestVersion=template.latest_version,
        publishedVersion=template.published_version,
        updatedAt=template.updated_at,
    )


def template_read(detail: TemplateDetail) -> TemplateRead:
    template, version = detail.template, detail.version
    return TemplateRead(
        **template_summary(template).model_dump(),
        version=version.version,
        versions=detail.versions,
        subject=version.subject,
        html=version.html,
        text=version.text,
        createdAt=template.created_at,
    )


def template_rendered(preview: Preview) -> TemplateRendered:
    rendered = preview.rendered
    return TemplateRendered(
        subject=rendered.subject, html=rendered.html, text=rendered.text, missing=preview.missing
    )
