"""Which engagement a message gets: what it asked for, else the defaults.

Tracking is off unless asked for: per message, else the use case's defaults (mail sent
through one), else the workspace's (off when nobody set them: transactional mail is
private by default). A marketing use case always carries one-click unsubscribe, whatever
the message says: bulk mail must offer it (RFC 8058, mailbox providers' rules).
"""

from dataclasses import dataclass
from typing import TypeVar

from posthouse.db.models import UseCase, Workspace
from posthouse.sending.schemas import ValidSend

MARKETING = "marketing"
T = TypeVar("T")


@dataclass(frozen=True)
class Engagement:
    track_opens: bool
    track_clicks: bool  # links in the HTML part
    track_text_clicks: bool  # links in the text part
    unsubscribe: bool
    unsubscribe_redirect_url: str | None


def resolve(send: ValidSend, workspace: Workspace, use_case: UseCase | None = None) -> Engagement:
    opens = _first(
        send.track_opens, use_case.track_opens if use_case else None, workspace.track_opens
    )
    clicks = _first(
        send.track_clicks, use_case.track_clicks if use_case else None, workspace.track_clicks
    )
    if use_case is not None and use_case.type == MARKETING:
        unsubscribe = True
    elif send.unsubscribe is not None:
        unsubscribe = send.unsubscribe
    else:
        # A redirect URL for after unsubscribing asks for unsubscribe (seed 002).
        unsubscribe = send.unsubscribe_redirect_url is not None
    return Engagement(
        track_opens=bool(opens),
        track_clicks=clicks in ("html", "both"),
        track_text_clicks=clicks in ("text", "both"),
        unsubscribe=unsubscribe,
        unsubscribe_redirect_url=send.unsubscribe_redirect_url if unsubscribe else None,
    )


def _first(*choices: T | None) -> T | None:
    """The most specific choice made: the message's, the use case's, the workspace's."""
    return next((choice for choice in choices if choice is not None), None)
