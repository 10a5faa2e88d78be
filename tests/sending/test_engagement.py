"""sending.engagement.resolve: the message's choice, else the use case's, else the
workspace's; a marketing use case always carries one-click unsubscribe. (Through the
app: tests/tracking/test_use_cases.py.)"""

from typing import Any

import pytest

from posthouse.db.models import UseCase, Workspace
from posthouse.sending.engagement import resolve
from posthouse.sending.schemas import SendRequest
from posthouse.sending.validation import validate_send


def _send(**options: Any) -> Any:
    return validate_send(
        SendRequest(sender="a@shop.example", to=["b@example.com"], subject="s", html="<p>hi</p>",
                    **options)
    )  # fmt: skip


WORKSPACE = Workspace(name="w", track_opens=True, track_clicks="text")


def _use_case(type: str = "transactional", **defaults: Any) -> UseCase:
    return UseCase(name="u", type=type, **defaults)


@pytest.mark.parametrize(
    ("options", "use_case", "opens", "html", "text"),
    [
        ({}, None, True, False, True),  # the workspace's
        ({}, _use_case(), True, False, True),  # a use case that inherits
        ({}, _use_case(track_opens=False, track_clicks="html"), False, True, False),
        ({"track_opens": True, "track_clicks": "none"}, _use_case(track_opens=False), True,
         False, False),  # the message's own choice wins
    ],
)  # fmt: skip
def test_tracking_falls_back_message_use_case_workspace(
    options: dict[str, Any], use_case: UseCase | None, opens: bool, html: bool, text: bool
) -> None:
    engagement = resolve(_send(**options), WORKSPACE, use_case)

    assert (engagement.track_opens, engagement.track_clicks, engagement.track_text_clicks) == (
        opens,
        html,
        text,
    )


def test_a_marketing_use_case_always_carries_unsubscribe() -> None:
    refused = _send(unsubscribe=False, unsubscribe_redirect_url="https://shop.example/bye")

    assert resolve(refused, WORKSPACE, _use_case("marketing")).unsubscribe
    assert resolve(refused, WORKSPACE, _use_case("marketing")).unsubscribe_redirect_url == (
        "https://shop.example/bye"
    )
    assert not resolve(refused, WORKSPACE, _use_case()).unsubscribe
    assert not resolve(_send(), WORKSPACE, None).unsubscribe
