"""The sandboxed renderer on its own: what it renders, what it refuses, what it needs."""

import time

import pytest

from posthouse.errors import TemplateInvalid, TemplateRenderFailed
from posthouse.mime.text import html_to_text
from posthouse.templates.rendering import TemplateParts, compile_parts
from posthouse.templates.sandbox import RenderLimits


def html(source: str) -> TemplateParts:
    return TemplateParts(subject=None, html=source, text=None)


def render_html(source: str, **variables: object) -> str | None:
    return compile_parts(html(source)).render(variables).html


class TestRendering:
    def test_renders_each_part_with_the_variables(self) -> None:
        compiled = compile_parts(
            TemplateParts("Hi {{ name }}", "<p>Hi {{ name }}</p>", "Hi {{ name }}, {{ n + 1 }}")
        )

        rendered = compiled.render({"name": "Ada", "n": 41})

        assert (rendered.subject, rendered.html, rendered.text) == (
            "Hi Ada",
            "<p>Hi Ada</p>",
            "Hi Ada, 42",
        )

    def test_values_are_escaped_in_html_and_left_alone_in_text(self) -> None:
        compiled = compile_parts(TemplateParts(None, "<p>{{ v }}</p>", "{{ v }}"))

        rendered = compiled.render({"v": "<script>alert(1)</script>&"})

        assert rendered.html == "<p>&lt;script&gt;alert(1)&lt;/script&gt;&amp;</p>"
        assert rendered.text == "<script>alert(1)</script>&"

    def test_a_line_break_in_a_value_cannot_leave_the_subject(self) -> None:
        compiled = compile_parts(TemplateParts("Order {{ id }}", "<p>x</p>", None))

        subject = compiled.render_subject({"id": "1\r\nBcc: victim@example.com\nX: y"})

        assert subject == "Order 1 Bcc: victim@example.com X: y"

    def test_loops_conditions_filters_and_json_objects(self) -> None:
        source = (
            "{% for item in items %}{{ loop.index }}. {{ item.name|upper }} "
            "x{{ item['qty'] }}{% if not loop.last %}, {% endif %}{% endfor %}"
            "{% if coupon %} ({{ coupon }}){% endif %} total {{ items|map(attribute='qty')|sum }}"
        )

        output = render_html(source, items=[{"name": "tea", "qty": 2}, {"name": "jam", "qty": 1}])

        assert output == "1. TEA x2, 2. JAM x1 total 3"

    def test_rendering_twice_gives_the_same_text(self) -> None:
        compiled = compile_parts(html("{% for k, v in d|dictsort %}{{ k }}={{ v }};{% endfor %}"))
        values = {"d": {"b": 2, "a": 1, "c": 3}}

        assert compiled.render(values) == compiled.render(values)


class TestRequiredVariables:
    @pytest.mark.parametrize(
        ("source", "required"),
        [
            ("{{ a }} {{ b.c }}", {"a", "b"}),
            ("{% for x in xs %}{{ x }}{{ y }}{% endfor %}", {"xs", "y"}),
            ("{% set a = 1 %}{{ a }}", set()),
            ("{% if coupon %}{{ coupon }}{% endif %}", set()),
            ("{% if coupon is defined %}{{ coupon }}{% else %}none{% endif %}", set()),
            ("{{ nick|default(name) }}", {"name"}),
            ("{{ nick or 'friend' }}", set()),
            ("{% if total > 10 %}big{% endif %}", {"total"}),
            ("{{ range(3)|join }}", set()),
        ],
    )
    def test_the_variables_a_template_needs(self, source: str, required: set[str]) -> None:
        assert compile_parts(html(source)).required == required

    def test_missing_names_the_absent_ones_sorted(self) -> None:
        compiled = compile_parts(TemplateParts("{{ z }}", "{{ a }}{{ m }}", "{{ b }}"))

        assert compiled.missing({"m": 1}) == ["a", "b", "z"]


class TestCompileErrors:
    def test_a_syntax_error_names_part_and_line(self) -> None:
        with pytest.raises(TemplateInvalid) as caught:
            compile_parts(TemplateParts("ok", "<p>\n\n{{ name }</p>", None))

        assert (caught.value.part, caught.value.line) == ("html", 3)
        assert caught.value.detail.startswith("html: line 3: ")

    @pytest.mark.parametrize(
        "source",
        [
            "{{ ''.__class__.__mro__ }}",
            "{{ cycler.__init__.__globals__ }}",
            "{{ x.__dict__ }}",
            "{% include 'secret.html' %}",
            "{% import 'macros.html' as m %}",
            "{% extends 'base.html' %}",
            "{% for x in xs recursive %}{{ loop(x) }}{% endfor %}",
            "{{ x|attr('__class__') }}",
            "{{ x|safe }}",
        ],
    )
    def test_escapes_are_refused_when_saved(self, source: str) -> None:
        with pytest.raises(TemplateInvalid):
            compile_parts(html(source))


class TestSandbox:
    @pytest.mark.parametrize(
        ("source", "variables"),
        [
            ("{{ name.upper() }}", {"name": "x"}),
            ("{{ items.append(1) }}", {"items": []}),
            ("{{ d.items() }}", {"d": {}}),
            ("{{ cycler }}{{ cycler.next }}", {"cycler": "a"}),
            ("{{ '%s%s' % (a, a) }}", {"a": "x"}),
            ("{{ lipsum(1000000) }}", {}),
        ],
    )
    def test_no_python_object_is_reachable(self, source: str, variables: dict[str, object]) -> None:
        with pytest.raises(TemplateRenderFailed):
            compile_parts(html(source)).render(variables)

    def test_a_loop_of_a_billion_iterations_stops(self) -> None:
        compiled = compile_parts(
            html("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}")
        )
        started = time.monotonic()

        with pytest.raises(TemplateRenderFailed, match="steps"):
            compiled.render({})

        assert time.monotonic() - started < 5

    def test_a_slow_render_stops_at_the_time_cap(self) -> None:
        compiled = compile_parts(
            html("{% for i in range(100000) %}{{ big|sort|first }}{% endfor %}")
        )
        limits = RenderLimits(max_seconds=0.05, max_work_chars=10**12)

        with pytest.raises(TemplateRenderFailed, match="ran over"):
            compiled.render({"big": list(range(100_000, 0, -1))}, limits)

    @pytest.mark.parametrize(
        "source",
        [
            "{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}",
            "{{ 'x' * 100000000 }}",
            "{{ [s] * 100000|join }}",
            "{{ range(100000)|join(s) }}",
            "{{ s|replace('x', s) }}",
            "{% set ns = namespace(v='x') %}{% for i in range(60) %}"
            "{% set ns.v = ns.v ~ ns.v %}{% endfor %}",
            "{% macro grow(v, n) %}{{ grow(v ~ v, n - 1) if n else v }}{% endmacro %}"
            "{{ grow('x', 60) }}",
            "{{ 10 ** 1000000 }}",
        ],
    )
    def test_a_hundred_megabytes_of_output_stops(self, source: str) -> None:
        started = time.monotonic()

        with pytest.raises(TemplateRenderFailed):
            compile_parts(html(source)).render({"s": "x" * 10_000})

        assert time.monotonic() - started < 5

    def test_the_output_cap_applies_to_the_rendered_part(self) -> None:
        compiled = compile_parts(html("{% for i in range(200) %}{{ s }}{% endfor %}"))

        with pytest.raises(TemplateRenderFailed, match="output"):
            compiled.render({"s": "x" * 1000}, RenderLimits(max_output_chars=100_000))

    def test_endless_recursion_stops(self) -> None:
        compiled = compile_parts(html("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}"))

        with pytest.raises(TemplateRenderFailed, match="deeply"):
            compiled.render({})


class TestTextFromHtml:
    @pytest.mark.parametrize(
        ("source", "variables"),
        [
            (
                "<html><body><h1>Hi {{ name }}</h1><p>Order {{ order }} &amp; more</p>"
                "{% for i in items %}<li>{{ i }}</li>{% endfor %}"
                '<a href="https://x.example/reset/{{ token }}">Reset</a></body></html>',
                {"name": "A<b> & c", "order": "1\nx\t\ty", "items": ["a", "b"], "token": "t1"},
            ),
            ("{% if a < 3 %}<p>small {{ a }}</p>{% endif %}", {"a": 1}),
            ("<p>{{ x }}</p><br>{{ n }}&nbsp;{{ none }}", {"x": "  a   b  ", "n": 3, "none": None}),
            (
                "<table>{% for r in rows %}<tr><td>{{ r.a }}</td><td>{{ r.b }}</td></tr>"
                "{% endfor %}</table>",
                {"rows": [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]},
            ),
            # Syntax inside a tag: each copy is converted on its own.
            ('<a href="{{ url }}">Go</a> {{ name }}', {"url": "https://u.example", "name": "n"}),
        ],
    )
    def test_is_what_converting_each_rendered_copy_gives(
        self, source: str, variables: dict[str, object]
    ) -> None:
        rendered = compile_parts(html(source)).render(variables)

        assert rendered.html is not None
        assert (rendered.text or html_to_text(rendered.html)) == html_to_text(rendered.html)

    def test_is_derived_once_from_the_template_where_it_can_be(self) -> None:
        derived = compile_parts(html("<p>Hi {{ name }}</p>"))
        per_copy = compile_parts(html('<a href="{{ url }}">Go</a>'))

        assert derived.render({"name": "Ada"}).text == "Hi Ada\n"
        assert per_copy.render({"url": "https://u.example"}).text is None
