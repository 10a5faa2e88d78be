"""Machine opens and clicks, by recorded user agents, addresses and timings."""

from datetime import UTC, datetime, timedelta

import pytest

from posthouse.tracking.machine import SCANNER_SECONDS, Hit, machine_reason

DELIVERED = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
LATER = DELIVERED + timedelta(minutes=5)
# Recorded user agents (as seen in access logs of tracking pixels and links).
APPLE_MPP = "Mozilla/5.0"
GMAIL_PROXY = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
)
YAHOO_PROXY = "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html"
IPHONE_MAIL = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148"
)
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
SCANNER = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/120.0.0.0 Safari/537.36"
)


def hit(agent: str, *, method: str = "GET", ip: str = "203.0.113.9", at: datetime = LATER) -> Hit:
    return Hit(method=method, user_agent=agent, ip=ip, at=at, delivered_at=DELIVERED)


@pytest.mark.parametrize(
    ("case", "click", "reason"),
    [
        (hit(APPLE_MPP, ip="17.58.101.2"), False, "apple_mpp"),
        (hit(APPLE_MPP), False, "apple_mpp"),
        (hit(GMAIL_PROXY, ip="66.102.8.40"), False, "google_image_proxy"),
        (hit(FIREFOX, ip="66.249.84.3"), False, "google_image_proxy"),
        (hit(YAHOO_PROXY, ip="98.137.10.4"), False, "yahoo_image_proxy"),
        (hit(SCANNER), True, "scanner_ua"),
        (hit(FIREFOX, method="HEAD"), True, "head_request"),
        (hit(FIREFOX, at=DELIVERED + timedelta(seconds=2)), True, "scanner_timing"),
        (hit(IPHONE_MAIL), False, None),
        (hit(IPHONE_MAIL, at=DELIVERED + timedelta(seconds=2)), False, None),
        (hit(FIREFOX), True, None),
        (hit(FIREFOX, at=DELIVERED + timedelta(seconds=SCANNER_SECONDS)), True, None),
        (hit(FIREFOX, ip="not an address"), True, None),
        (hit(FIREFOX, ip="2001:db8::1"), True, None),
    ],
)
def test_machine_reason(case: Hit, click: bool, reason: str | None) -> None:
    assert machine_reason(case, click=click) == reason


def test_a_click_on_an_undelivered_copy_is_judged_by_agent_only() -> None:
    early = Hit("GET", FIREFOX, "203.0.113.9", DELIVERED, delivered_at=None)

    assert machine_reason(early, click=True) is None
