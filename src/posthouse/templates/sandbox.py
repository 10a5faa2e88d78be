"""The template language: Jinja2's sandbox, narrowed further, with every render metered.

What a template can do: print variables (HTML-escaped in HTML), use ``if``, ``for``,
``set`` and macros, and a list of side-effect-free filters. What it cannot do:

- reach Python objects: attribute access reads keys of JSON objects (``user.name``) and
  the ``loop`` variable's fields, nothing else; names starting with ``_`` are refused when
  the template is saved; there is no ``include``, ``import`` or ``extends`` and no loader,
  so no file is ever opened;
- run away: every output, concatenation, call, filter result and loop iteration is
  charged to a budget (steps and characters), and a render over it stops with
  ``RenderLimitExceeded``; operators that could build a huge value in one step (``*``,
  ``**``, ``%`` on strings, ``join``, ``replace``) are checked before they run;
- differ between two renders of the same values: no ``random``, ``lipsum`` or clock, so a
  copy rendered again on a retry is the same text.
"""

import contextvars
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import wraps
from typing import Any

from jinja2 import ChainableUndefined, Undefined, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError, TemplateSyntaxError
from jinja2.filters import FILTERS
from jinja2.runtime import LoopContext
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import Namespace
from markupsafe import Markup


@dataclass(frozen=True)
class RenderLimits:
    """Caps on one render of one part (subject, HTML or text)."""

    max_output_chars: int = 5_000_000
    # Everything produced on the way (intermediate strings included): bounds memory.
    max_work_chars: int = 20_000_000
    # Outputs, calls, filters and loop iterations.
    max_steps: int = 1_000_000
    max_seconds: float = 2.0


class RenderLimitExceeded(Exception):
    """A render went over its budget of time, steps or characters."""


class _Budget:
    __slots__ = ("steps", "chars", "limits", "deadline")

    def __init__(self, limits: RenderLimits) -> None:
        self.limits = limits
        self.steps = 0
        self.chars = 0
        self.deadline = time.monotonic() + limits.max_seconds

    def charge(self, chars: int, *, costly: bool = False) -> None:
        """Count a step that produced ``chars`` characters. ``costly``: a filter or call,
        which can take long on its own, so the clock is read after each one."""
        self.steps += 1
        self.chars += chars
        limits = self.limits
        if self.chars > limits.max_work_chars:
            raise RenderLimitExceeded(
                f"the template produced over {limits.max_work_chars} characters"
            )
        if self.steps > limits.max_steps:
            raise RenderLimitExceeded(f"the template took over {limits.max_steps} steps")
        # Otherwise every 256 steps: outputs and loop iterations cost well under a
        # microsecond, reading the clock a tenth of one.
        if (costly or not self.steps & 255) and time.monotonic() > self.deadline:
            raise RenderLimitExceeded(f"the template ran over {limits.max_seconds} s")

    def ensure_room(self, chars: int) -> None:
        """Refuse before building a value of ``chars`` characters that would not fit."""
        if self.chars + chars > self.limits.max_work_chars:
            raise RenderLimitExceeded(
                f"the template produced over {self.limits.max_work_chars} characters"
            )


_BUDGET: contextvars.ContextVar[_Budget] = contextvars.ContextVar("posthouse_render_budget")


def _budget() -> _Budget:
    # Outside a render (Jinja folding constants while compiling) there is no budget: the
    # LookupError makes Jinja leave the expression to render time, where it is metered.
    return _BUDGET.get()


def _size(value: Any) -> int:
    return len(value) if isinstance(value, str | list | tuple | dict) else 0


def _metered(value: Any) -> Any:
    _budget().charge(_size(value))
    return value


def _metered_costly(value: Any) -> Any:
    _budget().charge(_size(value), costly=True)
    return value


class _MeteredCodeGenerator(CodeGenerator):
    """Jinja's code generator, with every output and concatenation passed through
    ``environment.meter``."""

    def _output_const_repr(self, group: Iterable[Any]) -> str:
        return f"environment.meter({super()._output_const_repr(group)})"

    def _output_child_pre(self, node: nodes.Expr, frame: Frame, finalize: Any) -> None:
        self.write("environment.meter(")
        super()._output_child_pre(node, frame, finalize)

    def _output_child_post(self, node: nodes.Expr, frame: Frame, finalize: Any) -> None:
        super()._output_child_post(node, frame, finalize)
        self.write(")")

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.meter(")
        super().visit_Concat(node, frame)
        self.write(")")


_LOOP_FIELDS = frozenset(
    {
        "index", "index0", "revindex", "revindex0", "first", "last", "length",
        "previtem", "nextitem", "depth", "depth0", "cycle", "changed",
    }
)  # fmt: skip
# Side-effect-free filters whose output is at most a small multiple of their input;
# ``join`` and ``replace`` are replaced by checked versions below. Left out: those that
# take a size (center, indent, format, batch, slice, wordwrap), reach attributes by name
# (attr), show Python objects (pprint), are random, or mark a value safe (safe: a value
# printed in HTML is always escaped).
_FILTERS = (
    "abs", "capitalize", "count", "d", "default", "dictsort", "e", "escape", "filesizeformat",
    "first", "float", "groupby", "int", "items", "last", "length", "list", "lower", "map",
    "max", "min", "reject", "rejectattr", "reverse", "round", "select", "selectattr",
    "sort", "string", "striptags", "sum", "title", "tojson", "trim", "truncate", "unique",
    "upper", "urlencode", "urlize", "wordcount", "xmlattr",
)  # fmt: skip


def _metered_filter(function: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(function)  # keeps Jinja's pass_context/pass_environment marks
    def metered(*args: Any, **kwargs: Any) -> Any:
        return _metered_costly(function(*args, **kwargs))

    return metered


def _join(value: Iterable[Any], d: str = "", attribute: str | int | None = None) -> str:
    if attribute is not None:
        raise SecurityError("join by attribute is not supported")
    items = [item if isinstance(item, str) else str(item) for item in value]
    _budget().ensure_room(sum(map(len, items)) + len(d) * len(items))
    if any(isinstance(item, Markup) for item in items) or isinstance(d, Markup):
        return Markup(d).join(items)
    return d.join(items)


def _replace(value: str, old: str, new: str, count: int | None = None) -> str:
    value, old, new = str(value), str(old), str(new)
    times = value.count(old) if old else len(value) + 1
    if count is not None and count >= 0:
        times = min(times, count)
    _budget().ensure_room(len(value) + times * len(new))
    return value.replace(old, new, -1 if count is None else count)


def _multiply(left: Any, right: Any) -> Any:
    for sequence, times in ((left, right), (right, left)):
        if isinstance(sequence, str | list | tuple) and isinstance(times, int):
            _budget().ensure_room(len(sequence) * max(times, 0))
    return _metered(left * right)


def _power(left: Any, right: Any) -> Any:
    if isinstance(left, int) and isinstance(right, int) and right > 0:
        if abs(left) > 1 and left.bit_length() * right > 4096:
            raise RenderLimitExceeded("the number would be over 4096 bits")
    return left**right


def _modulo(left: Any, right: Any) -> Any:
    if isinstance(left, str):
        raise SecurityError("string formatting with % is not supported")
    return left % right


def _plus(left: Any, right: Any) -> Any:
    return _metered(left + right)


class _TemplateEnvironment(SandboxedEnvironment):
    code_generator_class = _MeteredCodeGenerator
    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self, *, autoescape: bool, finalize: Callable[[Any], Any] | None = None) -> None:
        super().__init__(
            autoescape=autoescape,
            undefined=ChainableUndefined,
            auto_reload=False,
            cache_size=0,
            finalize=finalize,
        )
        self.filters = {name: _metered_filter(FILTERS[name]) for name in _FILTERS}
        self.filters["join"] = _join
        self.filters["replace"] = _replace
        # range (the sandbox's, at most 100,000 items), dict and namespace; cycler,
        # joiner and lipsum go (lipsum is random).
        self.globals = {name: self.globals[name] for name in ("range", "dict", "namespace")}
        self.binop_table = {
            **self.binop_table,
            "*": _multiply,
            "**": _power,
            "%": _modulo,
            "+": _plus,
        }

    # Called by the generated code (see _MeteredCodeGenerator and _parse).
    meter = staticmethod(_metered)

    @staticmethod
    def metered_iter(iterable: Iterable[Any]) -> Iterator[Any]:
        budget = _budget()
        for item in iterable:
            budget.charge(0)
            yield item

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        for loader in tree.find_all((nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)):
            raise TemplateSyntaxError(
                "include, import and extends are not supported", loader.lineno, name, filename
            )
        for access in tree.find_all(nodes.Getattr):
            if access.attr.startswith("_"):
                raise TemplateSyntaxError(
                    f"access to {access.attr!r} is not allowed", access.lineno, name, filename
                )
        for loop in tree.find_all(nodes.For):
            if loop.recursive:
                raise TemplateSyntaxError(
                    "recursive loops are not supported", loop.lineno, name, filename
                )
            loop.iter = nodes.Call(
                nodes.EnvironmentAttribute("metered_iter", lineno=loop.lineno),
                [loop.iter],
                [],
                None,
                None,
                lineno=loop.lineno,
            )
        return tree

    def getattr(self, obj: Any, attribute: str) -> Any:
        """``a.b`` reads key ``b`` of a JSON object, or a field of ``loop``; nothing else."""
        if isinstance(obj, Mapping):
            return self.getitem(obj, attribute)
        if isinstance(obj, Undefined):
            return obj  # ``user.address.city`` without a user: still undefined, not an error
        if isinstance(obj, LoopContext) and attribute in _LOOP_FIELDS:
            return getattr(obj, attribute)
        if isinstance(obj, Namespace):
            try:
                return getattr(obj, attribute)
            except AttributeError:
                return self.undefined(obj=obj, name=attribute)
        return self.unsafe_undefined(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        """Items of JSON objects and arrays, characters of strings: never attributes."""
        if isinstance(obj, Mapping | list | tuple | str | range):
            try:
                return obj[argument]
            except (TypeError, LookupError):
                pass
            return self.undefined(obj=obj, name=argument)
        if isinstance(argument, str):
            return self.getattr(obj, argument)
        return self.undefined(obj=obj, name=argument)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        raise SecurityError(f"access to {attribute!r} of a {type(obj).__name__} is not allowed")

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        return _metered_costly(super().call(__context, __obj, *args, **kwargs))


_TO_SPACE = str.maketrans("\t\r\n\f\v", "     ")


def _spaced(value: Any) -> Any:
    return value.translate(_TO_SPACE) if isinstance(value, str) else value


HTML = _TemplateEnvironment(autoescape=True)
PLAIN = _TemplateEnvironment(autoescape=False)
# For text derived from an HTML template (rendering._text_template): a value's line
# breaks become spaces, as converting the rendered HTML to text would make them.
DERIVED_TEXT = _TemplateEnvironment(autoescape=False, finalize=_spaced)


def run(render: Callable[[], str], limits: RenderLimits) -> str:
    """Call ``render`` (a template's ``render``) with a fresh budget."""
    token = _BUDGET.set(_Budget(limits))
    try:
        output = render()
    except RecursionError:
        raise RenderLimitExceeded("the template calls itself too deeply") from None
    except MemoryError:
        raise RenderLimitExceeded("the template ran out of memory") from None
    finally:
        _BUDGET.reset(token)
    if len(output) > limits.max_output_chars:
        raise RenderLimitExceeded(f"the output is over {limits.max_output_chars} characters")
    return output
