"""Which tracking hits were made by machines rather than by the recipient.

Machine hits are recorded and flagged (``machine: true`` and a ``machine_reason``), never
dropped; the human counts leave them out. The rules are data below, documented in
docs/tracking.md and tested with recorded user agents and timings:

- ``apple_mpp``: Apple Mail Privacy Protection fetches every image of a message when it
  arrives, from Apple's network, with the bare user agent ``Mozilla/5.0``.
- ``google_image_proxy`` and ``yahoo_image_proxy``: the webmail image proxies, known by
  their user agents or their published address ranges; they fetch for the reader, so the
  time of an open through them says little (some prefetch on arrival).
- ``scanner_ua``: link checkers and security gateways that say what they are.
- ``head_request``: a HEAD request is a link checker; people's browsers send GET.
- ``scanner_timing``: a click within ``SCANNER_SECONDS`` of delivery: security scanners
  open every link of a message as it arrives, before anyone could have read it.
"""

import ipaddress
from dataclasses import dataclass
from datetime import datetime

# Seconds after the remote server accepted the message in which a click is a scanner's.
SCANNER_SECONDS = 10.0

APPLE_MPP_USER_AGENT = "Mozilla/5.0"
# (reason, user agent substring), matched case-insensitively.
USER_AGENT_RULES: tuple[tuple[str, str], ...] = (
    ("google_image_proxy", "googleimageproxy"),
    ("google_image_proxy", "via ggpht.com"),
    ("yahoo_image_proxy", "yahoomailproxy"),
    ("scanner_ua", "barracuda"),
    ("scanner_ua", "mimecast"),
    ("scanner_ua", "proofpoint"),
    ("scanner_ua", "safelinks"),
    ("scanner_ua", "bingpreview"),
    ("scanner_ua", "headlesschrome"),
    ("scanner_ua", "python-requests"),
    ("scanner_ua", "go-http-client"),
    ("scanner_ua", "curl/"),
    ("scanner_ua", "wget/"),
)
# (reason, network): the proxies' published egress ranges.
NETWORK_RULES: tuple[tuple[str, str], ...] = (
    ("apple_mpp", "17.0.0.0/8"),
    ("google_image_proxy", "66.102.0.0/20"),
    ("google_image_proxy", "66.249.80.0/20"),
    ("yahoo_image_proxy", "74.6.0.0/16"),
    ("yahoo_image_proxy", "98.136.0.0/14"),
)
_NETWORKS = tuple((reason, ipaddress.ip_network(net)) for reason, net in NETWORK_RULES)


@dataclass(frozen=True)
class Hit:
    """What a tracking request tells about who made it."""

    method: str
    user_agent: str
    ip: str | None
    at: datetime
    delivered_at: datetime | None  # when the remote server accepted the copy


def machine_reason(hit: Hit, *, click: bool) -> str | None:
    """Why ``hit`` was made by a machine, or None when it looks like the recipient."""
    if hit.method == "HEAD":
        return "head_request"
    agent = hit.user_agent.strip()
    if agent == APPLE_MPP_USER_AGENT:
        return "apple_mpp"
    lowered = agent.lower()
    for reason, fragment in USER_AGENT_RULES:
        if fragment in lowered:
            return reason
    if hit.ip:
        try:
            address = ipaddress.ip_address(hit.ip)
        except ValueError:
            address = None
        if address is not None:
            for reason, network in _NETWORKS:
                if address in network:
                    return reason
    if click and hit.delivered_at is not None:
        if (hit.at - hit.delivered_at).total_seconds() < SCANNER_SECONDS:
            return "scanner_timing"
    return None
