"""Compile a template's parts once, tell which variables it needs, render them.

Pure: no database, no I/O. A stored template version and the inline content of a
personalised send both go through ``compile_parts``; the accept step uses ``missing``
and ``render_subject``, delivery uses ``render``.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import Template, meta, nodes
from jinja2.exceptions import TemplateSyntaxError

from posthouse.errors import TemplateInvalid, TemplateRenderFailed
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


def _compile(name: str, source: str) -> _Part:
    environment = sandbox.HTML if name == "html" else sandbox.PLAIN
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

    def missing(self, variables: Variables) -> list[str]:
        """The variables the template needs that ``variables`` lacks, sorted."""
        return sorted(self.required.difference(variables.keys()))

    def render_subject(
        self, variables: Variables, limits: RenderLimits = DEFAULT_RENDER_LIMITS
    ) -> str | None:
        return self._render("subject", variables, limits)

    def render(
        self, variables: Variables, limits: RenderLimits = DEFAULT_RENDER_LIMITS
    ) -> Rendered:
        return Rendered(
            subject=self._render("subject", variables, limits),
            html=self._render("html", variables, limits),
            text=self._render("text", variables, limits),
        )

    def _render(self, name: str, variables: Variables, limits: RenderLimits) -> str | None:
        part = self._parts.get(name)
        if part is None:
            return None
        try:
            output = sandbox.run(lambda: part.template.render(variables), limits)
        except Exception as error:  # whatever the template's code raised: its author's mistake
            raise TemplateRenderFailed(
                f"{name}: {error}" if str(error) else f"{name}: {type(error).__name__}",
                part=name,
            ) from None
        # A subject is one line: a value with CR or LF in it cannot start a new header.
        return " ".join(output.splitlines()) if name == "subject" else output


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
