"""Which engagement a message gets: what it asked for, else the defaults.

Tracking is off unless asked for: per message, else the workspace's defaults (off when
nobody set them: transactional mail is private by default). Use cases (issue 16) slot in
between the message and the workspace here: a marketing use case always carries
unsubscribe.
"""

from dataclasses import dataclass

from posthouse.db.models import Workspace
from posthouse.sending.schemas import ValidSend


@dataclass(frozen=True)
class Engagement:
    track_opens: bool
    track_clicks: bool  # links in the HTML part
    track_text_clicks: bool  # links in the text part
    unsubscribe: bool
    unsubscribe_redirect_url: str | None


def resolve(send: ValidSend, workspace: Workspace) -> Engagement:
    opens = send.track_opens if send.track_opens is not None else bool(workspace.track_opens)
    clicks = send.track_clicks or workspace.track_clicks or "none"
    # A redirect URL for after unsubscribing asks for unsubscribe (seed 002).
    unsubscribe = (
        send.unsubscribe
        if send.unsubscribe is not None
        else send.unsubscribe_redirect_url is not None
    )
    return Engagement(
        track_opens=opens,
        track_clicks=clicks in ("html", "both"),
        track_text_clicks=clicks in ("text", "both"),
        unsubscribe=unsubscribe,
        unsubscribe_redirect_url=send.unsubscribe_redirect_url if unsubscribe else None,
    )
