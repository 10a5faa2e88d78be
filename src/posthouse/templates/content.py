"""The content step for templates and personalisation (``sending.content.ContentStep``).

A request that names a template, or gives values, is turned into one ``validate_send``
can check like any other:

- the template's published (or named) version supplies subject, html and text; a
  subject, or a body (html and text together), given in the request overrides the
  template's;
- every recipient must have every variable the template needs (common values plus their
  own): otherwise ``MissingVariables`` names them, and nothing is stored (unless the
  request asks for ``blank_missing_variables``: they render empty);
- without values per recipient, every copy is the same: it is rendered here, once, and
  the message stores what is sent;
- with them, each recipient's subject is rendered here (and validated like a subject);
  the message stores the sources and the values, and delivery renders each copy
  (``templates.personalise``). The stored subject, which the 202 shows, is the first
  recipient's.
"""

import dataclasses
import re
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from posthouse.addresses import Address, address_key, parse_address
from posthouse.errors import MissingVariables, ValidationFailed
from posthouse.sending.schemas import Personalisation, SendRequest
from posthouse.sending.validation import validate_subject
from posthouse.templates import service
from posthouse.templates.rendering import CompiledTemplate, TemplateParts, compile_parts

# What a bare address never holds: a display name, quotes, comments, spaces, controls.
_SPECIAL = re.compile(r'[\s<>"(),;:\\\[\]]|[\x00-\x1f]')


class TemplateContent:
    def __init__(self, *, versions: service.VersionCache | None = None) -> None:
        self.versions = versions

    async def prepare(
        self, session: AsyncSession, *, caller: Any, request: SendRequest
    ) -> SendRequest:
        if (
            request.template is None
            and request.variables is None
            and request.recipient_variables is None
        ):
            return request
        variables = _values(request.variables, field="variables")
        recipients = _envelope(request)
        own = _recipient_values(request.recipient_variables, recipients)
        version_id = None
        if request.template is not None:
            version = await service.version_for_send(
                session,
                workspace_id=caller.workspace.id,
                ref=request.template.ref,
                version=request.template.version,
                cache=self.versions,
            )
            version_id = version.id
            compiled = _with_overrides(service.compiled_version(version), request)
        else:
            compiled = compile_parts(TemplateParts(request.subject, request.html, request.text))
        if not request.blank_missing_variables:
            _ensure_complete(compiled, variables, own, recipients)
        if not own:
            rendered = compiled.render(variables, derive_text=request.auto_text)
            return dataclasses.replace(
                request,
                subject=rendered.subject,
                html=rendered.html,
                text=rendered.text,
                template_version_id=version_id,
            )
        subjects = {
            address: validate_subject(compiled.render_subject({**variables, **values}))
            for address, values in own.items()
        }
        if any(address not in own for address in recipients):
            common = validate_subject(compiled.render_subject(variables))
            subjects.update({address: common for address in recipients if address not in own})
        subject = subjects[recipients[0]]
        return dataclasses.replace(
            request,
            subject=subject,
            html=compiled.parts.html,
            text=compiled.parts.text,
            template_version_id=version_id,
            personalisation=Personalisation(
                subject_template=compiled.parts.subject or "",
                variables=variables,
                recipients=own,
            ),
        )


def _with_overrides(compiled: CompiledTemplate, request: SendRequest) -> CompiledTemplate:
    """The version's parts, with the request's subject and body (html and text as one)
    in their place when given."""
    subject = request.subject if request.subject else compiled.parts.subject
    body_given = bool(request.html or request.text)
    html = request.html if body_given else compiled.parts.html
    text = request.text if body_given else compiled.parts.text
    if (subject, html, text) == (compiled.parts.subject, compiled.parts.html, compiled.parts.text):
        return compiled
    return compile_parts(TemplateParts(subject, html, text))


def _ensure_complete(
    compiled: CompiledTemplate,
    variables: dict[str, Any],
    own: dict[str, dict[str, Any]],
    recipients: list[str],
) -> None:
    if any(address not in own for address in recipients):
        missing = compiled.missing(variables)
        if missing:
            recipient = next(a for a in recipients if a not in own)
            raise _missing(missing, recipient if own else None)
    for address, values in own.items():
        missing = compiled.missing({**variables, **values})
        if missing:
            raise _missing(missing, address)


def _missing(names: list[str], recipient: str | None) -> MissingVariables:
    whom = f" for {recipient}" if recipient else ""
    return MissingVariables(
        f"missing template variables{whom}: {', '.join(names)}", names=names, recipient=recipient
    )


def _values(values: object, *, field: str) -> dict[str, Any]:
    if values is None:
        return {}
    if not isinstance(values, dict) or not all(isinstance(key, str) for key in values):
        raise ValidationFailed(f"{field} must be an object of named values", field=field)
    return values


def _envelope(request: SendRequest) -> list[str]:
    """The envelope recipients' addresses in lower case, to before cc before bcc. One
    that does not parse is left out: validation refuses the request for it."""
    addresses: list[str] = []
    for value in (*request.to, *request.cc, *request.bcc):
        try:
            email = _key(value.email if isinstance(value, Address) else value)
        except (ValidationFailed, TypeError, AttributeError):
            continue
        if email not in addresses:
            addresses.append(email)
    return addresses


def _key(address: str) -> str:
    """An address as delivery knows its recipient, in lower case. A bare ASCII address
    is that already: only others go through the parser (a tenth of a send's cost for
    ten recipients, twice)."""
    if address.isascii() and address.count("@") == 1 and not _SPECIAL.search(address):
        return address_key(address)
    return address_key(parse_address(address, field="to").email)


def _recipient_values(values: object, recipients: list[str]) -> dict[str, dict[str, Any]]:
    field = "recipient_variables"
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ValidationFailed(f"{field} must be an object keyed by address", field=field)
    own: dict[str, dict[str, Any]] = {}
    for key, entry in values.items():
        try:
            address = _key(key)
        except ValidationFailed:
            raise ValidationFailed(f"{field}: {key!r} is not an address", field=field) from None
        if address not in recipients:
            raise ValidationFailed(
                f"{field}: {key!r} is not a recipient of this email", field=field
            )
        own[address] = {**own.get(address, {}), **_values(entry, field=f"{field}.{key}")}
    return own
