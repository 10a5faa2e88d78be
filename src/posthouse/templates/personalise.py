"""The worker's per-recipient hook: each recipient's own rendering of a personalised
message (``Message.variables`` set; see templates.content).

A message's template is compiled once (not once per recipient), and messages with the
same sources share that compilation. Rendering is deterministic, and a recipient's rendering is
kept for a while after it was made, so a retry soon after uses it instead of rendering
again; a retry after it was dropped renders the same text again.
"""

import uuid
from collections import OrderedDict
from dataclasses import replace

from posthouse.addresses import address_key
from posthouse.db.models import Message
from posthouse.mime.builder import MimeContent
from posthouse.templates.rendering import (
    DEFAULT_RENDER_LIMITS,
    CompiledTemplate,
    Rendered,
    TemplateParts,
    compile_parts,
)
from posthouse.templates.sandbox import RenderLimits


class Personaliser:
    def __init__(
        self,
        *,
        limits: RenderLimits = DEFAULT_RENDER_LIMITS,
        compiled_size: int = 128,
        rendered_chars: int = 32_000_000,
    ) -> None:
        self.limits = limits
        self._compiled: OrderedDict[TemplateParts, CompiledTemplate] = OrderedDict()
        self._compiled_size = compiled_size
        self._rendered: OrderedDict[tuple[uuid.UUID, str], Rendered] = OrderedDict()
        self._rendered_chars = 0
        self._max_rendered_chars = rendered_chars

    def customise(
        self, message: Message, content: MimeContent, *, recipient: str, delivery_id: uuid.UUID
    ) -> MimeContent | None:
        """This recipient's rendering of a personalised message; None for any other."""
        if message.variables is None:
            return None
        rendered = self._rendering(message, address_key(recipient))
        return replace(
            content,
            subject=rendered.subject or content.subject,
            html=rendered.html,
            text=rendered.text,
        )

    def _rendering(self, message: Message, recipient: str) -> Rendered:
        key = (message.id, recipient)
        rendered = self._rendered.get(key)
        if rendered is not None:
            self._rendered.move_to_end(key)
            return rendered
        values = {
            **(message.variables or {}),
            **(message.recipient_variables or {}).get(recipient, {}),
        }
        rendered = self._template(message).render(
            values, self.limits, derive_text=message.auto_text
        )
        self._rendered[key] = rendered
        self._rendered_chars += _chars(rendered)
        while self._rendered_chars > self._max_rendered_chars and self._rendered:
            _, dropped = self._rendered.popitem(last=False)
            self._rendered_chars -= _chars(dropped)
        return rendered

    def _template(self, message: Message) -> CompiledTemplate:
        # By the sources rather than the message: the messages of one template version
        # (or of one inline content) share one compilation, which costs as much as
        # rendering a few dozen copies.
        parts = TemplateParts(message.subject_template, message.html, message.text)
        compiled = self._compiled.get(parts)
        if compiled is None:
            compiled = compile_parts(parts)
            self._compiled[parts] = compiled
            while len(self._compiled) > self._compiled_size:
                self._compiled.popitem(last=False)
        else:
            self._compiled.move_to_end(parts)
        return compiled


def _chars(rendered: Rendered) -> int:
    return len(rendered.subject or "") + len(rendered.html or "") + len(rendered.text or "")
