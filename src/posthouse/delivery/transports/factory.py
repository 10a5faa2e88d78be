"""Build the transport named by POSTHOUSE_DELIVERY_URL."""

from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from posthouse.config import Settings
from posthouse.delivery.transports.base import Transport
from posthouse.delivery.transports.maildir import MaildirTransport
from posthouse.delivery.transports.mx import MxConfig, MxTransport
from posthouse.delivery.transports.smtp import RelayConfig, SmtpRelayTransport
from posthouse.domains.dns import create_resolver


class DeliveryUrlError(ValueError):
    pass


def relay_config(url: str, settings: Settings) -> RelayConfig:
    parts = urlsplit(url)
    if parts.scheme not in {"smtp", "smtps"} or not parts.hostname:
        raise DeliveryUrlError(f"not an smtp:// URL: {url!r}")
    query = parse_qs(parts.query)
    tls = query.get("tls", ["implicit" if parts.scheme == "smtps" else "none"])[0]
    if tls not in {"none", "starttls", "implicit"}:
        raise DeliveryUrlError("tls must be none, starttls or implicit")
    default_port = 465 if tls == "implicit" else 25
    return RelayConfig(
        host=parts.hostname,
        port=parts.port or default_port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        tls=tls,
        timeout=settings.smtp_timeout_seconds,
        connections=settings.smtp_connections,
        helo_name=settings.helo_name,
    )


def create_transport(settings: Settings) -> Transport:
    url = settings.delivery_url
    if url.startswith("maildir:"):
        return MaildirTransport(Path(url.removeprefix("maildir:") or "./var/maildir"))
    if url.startswith(("smtp://", "smtps://")):
        return SmtpRelayTransport(relay_config(url, settings))
    if url == "mx:":
        return MxTransport(mx_config(settings), create_resolver(settings))
    raise DeliveryUrlError(
        f"unsupported POSTHOUSE_DELIVERY_URL {url!r}: use maildir:PATH, smtp://host:port or mx:"
    )


def mx_config(settings: Settings) -> MxConfig:
    return MxConfig(
        port=settings.mx_port,
        timeout=settings.smtp_timeout_seconds,
        helo_name=settings.helo_name,
        tls_policy=settings.tls_policy,
        connections_per_destination=settings.mx_connections_per_destination,
        rate_per_destination=settings.mx_rate_per_destination,
        messages_per_connection=settings.mx_messages_per_connection,
        slowdown_seconds=settings.mx_slowdown_seconds,
    )
