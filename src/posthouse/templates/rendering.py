"""Compile a template's parts once, tell which variables it needs, render them.

Pure: no database, no I/O. A stored template version and the inline content of a
personalised send both go through ``compile_parts``; the accept step uses ``missing``
and ``render_subject``, delivery uses ``render``.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import Template, meta, nodes
from jinja2.exceptions import TemplateSyntaxError

from posthouse.errors import TemplateInvalid, TemplateRenderFailed
from posthouse.mime.text import html_to_text, tidy
from posthouse.templates import sandbox
from posthouse.templates.sandbox import RenderLimits

DEFAULT_RENDER_LIMITS = RenderLimits()
Variables = Mapping[str, Any]


@dataclass(frozen=True)
class TemplateParts:
    """Template sources as written: ``{{ name }}`` where a value goes."""

    subject: str | None
    html: str | None
    text: str | None


@dataclass(frozen=True)
class Rendered:
    subject: str | None
    html: str | None
    text: str | None


@dataclass(frozen=True)
class _Part:
    name: str
    template: Template
    required: frozenset[str]


def _compile(name: str, source: str, environment: Any = None) -> _Part:
    environment = environment or (sandbox.HTML if name == "html" else sandbox.PLAIN)
    try:
        tree = environment.parse(source)
        template = environment.from_string(tree)
    except TemplateSyntaxError as error:
        raise TemplateInvalid(
            f"{name}: line {error.lineno}: {error.message}",
            part=name,
            line=error.lineno,
            error=error.message or "syntax error",
        ) from None
    return _Part(name, template, _required_names(tree, environment.globals.keys()))


class CompiledTemplate:
    """A template's parts compiled once; rendered any number of times."""

    def __init__(self, parts: TemplateParts) -> None:
        self.parts = parts
        self._parts = {
            name: _compile(name, source)
            for name, source in (
                ("subject", parts.subject),
                ("html", parts.html),
                ("text", parts.text),
            )
            if source is not None
        }
        self.required: frozenset[str] = frozenset().union(
            *(part.required for part in self._parts.values())
        )
        # Without a text part, each copy's text is derived from its rendered HTML. Where
        # the HTML's template allows, that conversion is done once, on the template.
        self._derived_text = (
            _text_template(parts.html) if parts.text is None and parts.html is not None else None
        )

    def missing(self, variables: Variables) -> list[str]:
        """The variables the template needs that ``variables`` lacks, sorted."""
        return sorted(self.required.difference(variables.keys()))

    def render_subject(
        self, variables: Variables, limits: RenderLimits = DEFAULT_RENDER_LIMITS
    ) -> str | None:
        return self._render("subject", variables, limits)

    def render(
        self,
        variables: Variables,
        limits: RenderLimits = DEFAULT_RENDER_LIMITS,
        *,
        derive_text: bool = True,
    ) -> Rendered:
        """Every part rendered; without a text part of its own, the text is derived from
        the rendered HTML unless ``derive_text`` is false (the message asked for none)."""
        subject = self._render("subject", variables, limits)
        html = self._render("html", variables, limits)
        text: str | None
        if self._derived_text is not None and derive_text:
            text = tidy(self._render_part(self._derived_text, variables, limits))
        else:
            text = self._render("text", variables, limits)
        return Rendered(subject=subject, html=html, text=text)

    def _render(self, name: str, variables: Variables, limits: RenderLimits) -> str | None:
        part = self._parts.get(name)
        return None if part is None else self._render_part(part, variables, limits)

    def _render_part(self, part: "_Part", variables: Variables, limits: RenderLimits) -> str:
        name = part.name
        try:
            output = sandbox.run(lambda: part.template.render(variables), limits)
        except Exception as error:  # whatever the template's code raised: its author's mistake
            raise TemplateRenderFailed(
                f"{name}: {error}" if str(error) else f"{name}: {type(error).__name__}",
                part=name,
            ) from None
        # A subject is one line: a value with CR or LF in it cannot start a new header.
        return " ".join(output.splitlines()) if name == "subject" else output


# A template's own syntax: expressions, statements, comments.
_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)


def _text_template(html: str) -> _Part | None:
    """The text part's template derived from the HTML's: the HTML converted to text
    around the template's own syntax, which is kept as written. The same as converting
    each rendered copy, at the cost of one conversion per message instead of one per
    recipient. None where the syntax sits inside a tag (``<a href="{{ url }}">``), which
    the conversion would drop: those copies are converted one by one."""
    spans = [match.group() for match in _JINJA.finditer(html)]
    if not spans:
        return None
    protected = _JINJA.sub(_Placeholders(), html)
    converted = html_to_text(protected)
    pieces = _PLACEHOLDER.split(converted)
    # split() gives text, index, text, index, ...: every span exactly once, in order.
    indexes = pieces[1::2]
    if indexes != [str(i) for i in range(len(spans))]:
        return None
    source = "".join(
        piece if position % 2 == 0 else spans[int(piece)] for position, piece in enumerate(pieces)
    )
    try:
        return _compile("text", source, sandbox.DERIVED_TEXT)
    except TemplateInvalid:
        return None


# Private-use characters: not white space, not markup, kept as they are by html_to_text.
_PLACEHOLDER = re.compile("\ue000([0-9]+)\ue001")


class _Placeholders:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self, match: re.Match[str]) -> str:
        self.count += 1
        return f"\ue000{self.count - 1}\ue001"


def compile_parts(parts: TemplateParts) -> CompiledTemplate:
    """Compile every part, or raise ``TemplateInvalid`` naming the part, line and error."""
    return CompiledTemplate(parts)


# A name is optional where the template only tests it: ``{% if coupon %}``,
# ``coupon is defined``, ``coupon | default("none")``, and inside the branch such a test
# guards. Every other use of a variable the template does not set itself requires it.
_GUARD_TESTS = frozenset({"defined", "undefined", "none"})
_DEFAULT_FILTERS = frozenset({"default", "d"})


def _required_names(tree: nodes.Template, globals_: Any) -> frozenset[str]:
    undeclared = meta.find_undeclared_variables(tree) - set(globals_)
    used: set[str] = set()
    _walk(tree, frozenset(), used)
    return frozenset(used & undeclared)


def _guards(test: nodes.Node) -> frozenset[str]:
    if isinstance(test, nodes.Name):
        return frozenset({test.name})
    if isinstance(test, nodes.Not):
        return _guards(test.node)
    if isinstance(test, nodes.And | nodes.Or):
        return _guards(test.left) | _guards(test.right)
    if isinstance(test, nodes.Test) and test.name in _GUARD_TESTS:
        return _guards(test.node)
    if isinstance(test, nodes.Filter) and test.name in _DEFAULT_FILTERS and test.node:
        return _guards(test.node)
    return frozenset()


def _walk(node: nodes.Node, guarded: frozenset[str], used: set[str]) -> None:
    if isinstance(node, nodes.Name):
        if node.ctx == "load" and node.name not in guarded:
            used.add(node.name)
        return
    if isinstance(node, nodes.Test | nodes.Filter) and (
        node.name in _GUARD_TESTS or node.name in _DEFAULT_FILTERS
    ):
        inner = guarded | (_guards(node.node) if node.node is not None else frozenset())
        for child in node.iter_child_nodes():
            _walk(child, inner, used)
        return
    if isinstance(node, nodes.If | nodes.CondExpr):
        inner = guarded | _guards(node.test)
        for child in node.iter_child_nodes():
            _walk(child, inner, used)
        return
    if isinstance(node, nodes.And | nodes.Or):
        # ``a or "x"`` and ``a and a.b`` only test ``a`` before using it.
        _walk(node.left, guarded | _guards(node.left), used)
        _walk(node.right, guarded | _guards(node.left), used)
        return
    for child in node.iter_child_nodes():
        _walk(child, guarded, used)
