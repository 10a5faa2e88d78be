"""Direct delivery to the recipient domain's MX hosts (POSTHOUSE_DELIVERY_URL=mx:).

Per destination (the recipient's domain) the transport keeps idle connections for reuse,
caps concurrent connections and sends per second, and pauses a destination that answered
421 or 4.7.x: deliveries to it are deferred without connecting until the pause ends.

Lookup (RFC 5321 section 5.1, RFC 7505): MX records in preference order (equal
preferences shuffled); no MX record means the domain itself is the host; a null MX and a
domain that does not exist are permanent; SERVFAIL and timeouts are temporary. A host
that cannot be reached, or greets with an error, passes the message to the next one.

TLS: STARTTLS whenever offered. ``tls_policy`` ``opportunistic`` falls back to a fresh
plain connection if the handshake fails; ``require`` and ``require_verified`` never do:
the delivery is deferred and the message never travels in clear.
"""

import asyncio
import ipaddress
import logging
import random
import ssl
import time
from dataclasses import dataclass, field, replace

import aiosmtplib
import dns.asyncresolver
import dns.exception
import dns.name
import dns.resolver

from posthouse.delivery.outcomes import (
    NullMx,
    TlsUnavailable,
    classify,
    is_throttle,
)
from posthouse.delivery.transports.base import Outcome, OutgoingMail, SendResult
from posthouse.delivery.transports.sendmail import sendmail

log = logging.getLogger(__name__)

_MAX_DESTINATIONS = 10_000


@dataclass(frozen=True)
class MxConfig:
    port: int = 25
    timeout: float = 60.0
    helo_name: str | None = None
    tls_policy: str = "opportunistic"  # opportunistic, require, require_verified
    connections_per_destination: int = 4
    rate_per_destination: float = 50.0  # sends/s; 0 = unlimited
    messages_per_connection: int = 100
    slowdown_seconds: float = 60.0
    idle_seconds: float = 30.0


@dataclass
class _Connection:
    client: aiosmtplib.SMTP
    host: str
    sent: int = 0
    idle_since: float = 0.0


@dataclass
class _Destination:
    slots: asyncio.Semaphore
    idle: list[_Connection] = field(default_factory=list)
    # A token bucket holding one second's worth of sends: a short burst goes at once,
    # the average stays at the rate. Negative while sends wait for their turn.
    tokens: float = 0.0
    refilled_at: float = 0.0
    paused_until: float = 0.0
    paused_reason: str = ""


class MxTransport:
    def __init__(self, config: MxConfig, resolver: dns.asyncresolver.Resolver) -> None:
        self.config = config
        self.resolver = resolver
        self._destinations: dict[str, _Destination] = {}
        self._tls_context = _tls_context(verified=config.tls_policy == "require_verified")
        self._burst = max(1.0, config.rate_per_destination)

    async def send(self, mail: OutgoingMail) -> SendResult:
        domain = _domain_of(mail.recipient)
        destination = self._destination(domain)
        if (held := self._held_back(destination, domain)) is not None:
            return held
        async with destination.slots:
            await self._pace(destination)
            # Another send may have been told to slow down while this one waited.
            if (held := self._held_back(destination, domain)) is not None:
                return held
            result = None
            connection = self._take_idle(destination)
            if connection is not None:
                result = await self._send_on(destination, connection, mail, reused=True)
            if result is None:
                result = await self._send_fresh(destination, domain, mail)
        if is_throttle(result):
            self._pause(destination, result)
            return replace(result, retry_after=self.config.slowdown_seconds)
        return result

    def _held_back(self, destination: _Destination, domain: str) -> SendResult | None:
        paused = destination.paused_until - time.monotonic()
        if paused <= 0:
            return None
        return SendResult(
            Outcome.DEFERRED,
            None,
            f"4.7.0 {domain} asked us to slow down: {destination.paused_reason}",
            None,
            retry_after=paused,
        )

    def _destination(self, domain: str) -> _Destination:
        destination = self._destinations.get(domain)
        if destination is None:
            if len(self._destinations) >= _MAX_DESTINATIONS:
                self._forget_quiet_destinations()
            destination = _Destination(
                asyncio.Semaphore(self.config.connections_per_destination),
                tokens=self._burst,
                refilled_at=time.monotonic(),
            )
            self._destinations[domain] = destination
        return destination

    def _forget_quiet_destinations(self) -> None:
        """Bound the memory a worker spends on the long tail of recipient domains."""
        now = time.monotonic()
        for domain, destination in list(self._destinations.items()):
            if (
                not destination.idle
                and destination.paused_until <= now
                and not destination.slots.locked()
                and destination.tokens >= 0
            ):
                del self._destinations[domain]

    async def _pace(self, destination: _Destination) -> None:
        """Hold a send until the destination's rate allows it."""
        if self.config.rate_per_destination <= 0:
            return
        rate = self.config.rate_per_destination
        now = time.monotonic()
        refill = (now - destination.refilled_at) * rate
        destination.tokens = min(self._burst, destination.tokens + refill)
        destination.refilled_at = now
        destination.tokens -= 1
        if destination.tokens < 0:
            await asyncio.sleep(-destination.tokens / rate)

    def _pause(self, destination: _Destination, result: SendResult) -> None:
        destination.paused_until = time.monotonic() + self.config.slowdown_seconds
        destination.paused_reason = f"{result.code} {result.reply}"[:200]
        idle, destination.idle = destination.idle, []
        for connection in idle:
            connection.client.close()
        log.warning(
            "%s answered %s %s: pausing it for %.0fs",
            result.remote_host,
            result.code,
            result.reply,
            self.config.slowdown_seconds,
        )

    def _take_idle(self, destination: _Destination) -> _Connection | None:
        now = time.monotonic()
        while destination.idle:
            connection = destination.idle.pop()
            if connection.client.is_connected and now - connection.idle_since < (
                self.config.idle_seconds
            ):
                return connection
            connection.client.close()
        return None

    def _release(self, destination: _Destination, connection: _Connection) -> None:
        connection.sent += 1
        if (
            connection.client.is_connected
            and connection.sent < self.config.messages_per_connection
            and destination.paused_until <= time.monotonic()
        ):
            connection.idle_since = time.monotonic()
            destination.idle.append(connection)
        else:
            connection.client.close()

    async def _send_fresh(
        self, destination: _Destination, domain: str, mail: OutgoingMail
    ) -> SendResult:
        try:
            hosts = await self._mx_hosts(domain)
        except Exception as error:  # classified: NXDOMAIN and null MX bounce, the rest defers
            return classify(error)
        failures: list[SendResult] = []
        for host in hosts:
            try:
                addresses = await self._addresses(host)
            except LookupError as error:
                if hosts == [domain]:
                    # No MX and no address: the domain cannot receive mail (RFC 5321 5.1).
                    return SendResult(Outcome.BOUNCED, None, f"5.1.2 {error}", host)
                failures.append(SendResult(Outcome.DEFERRED, None, f"4.4.3 {error}", host))
                continue
            except Exception as error:  # an MX host that fails to resolve: try the next one
                failures.append(SendResult(Outcome.DEFERRED, None, f"4.4.3 {error}", host))
                continue
            for address in addresses:
                try:
                    client = await self._connect(host, address)
                except Exception as error:  # classified below; the next host is tried
                    failure = classify(error, remote_host=host)
                    if is_throttle(failure):
                        return failure
                    log.info("MX %s (%s) for %s failed: %s", host, address, domain, failure.reply)
                    # A greeting such as 554 says "no service here", never "no such user".
                    failures.append(replace(failure, outcome=Outcome.DEFERRED))
                    continue
                connection = _Connection(client, host)
                result = await self._send_on(destination, connection, mail, reused=False)
                if result is None:
                    raise AssertionError("a fresh connection always yields a result")
                return result
        if not failures:
            return SendResult(Outcome.DEFERRED, None, f"4.4.4 no MX host for {domain}")
        # Every host failed: the operator sees why each one did.
        reply = "; ".join(f"{f.remote_host}: {f.reply}" for f in failures)
        return replace(failures[-1], reply=reply[:2000])

    async def _send_on(
        self,
        destination: _Destination,
        connection: _Connection,
        mail: OutgoingMail,
        *,
        reused: bool,
    ) -> SendResult | None:
        """Send on one connection. None when a reused connection turned out closed before
        anything was accepted, so a fresh one may try at once."""
        client, host = connection.client, connection.host
        try:
            reply = await sendmail(
                client, mail.envelope_from, mail.recipient, mail.data, crlf=mail.crlf
            )
        except aiosmtplib.SMTPServerDisconnected as error:
            client.close()
            return None if reused else classify(error, remote_host=host)
        except (aiosmtplib.SMTPResponseException, aiosmtplib.SMTPRecipientsRefused) as error:
            # sendmail sent RSET, so the connection is reusable unless the server is leaving.
            result = classify(error, remote_host=host)
            if result.code == 421:
                client.close()
            else:
                self._release(destination, connection)
            return result
        except BaseException as error:
            # Cancelled (the worker's deadline) or failed: the session state is unknown.
            client.close()
            if not isinstance(error, Exception):
                raise
            return classify(error, remote_host=host)
        self._release(destination, connection)
        return SendResult(Outcome.SENT, 250, reply, host)

    async def _connect(self, host: str, address: str) -> aiosmtplib.SMTP:
        client = await self._open(address)
        if not client.supports_extension("starttls"):
            if self.config.tls_policy != "opportunistic":
                client.close()
                raise TlsUnavailable(f"{host} does not offer STARTTLS and TLS is required")
            return client
        try:
            await client.starttls(server_hostname=host, tls_context=self._tls_context)
        except Exception as error:  # any handshake failure, decided by the policy below
            client.close()
            if self.config.tls_policy != "opportunistic":
                raise TlsUnavailable(f"STARTTLS with {host} failed: {error}") from error
            log.warning("STARTTLS with %s failed (%s); sending in clear", host, error)
            return await self._open(address)
        return client

    async def _open(self, address: str) -> aiosmtplib.SMTP:
        client = aiosmtplib.SMTP(
            hostname=address,
            port=self.config.port,
            timeout=self.config.timeout,
            local_hostname=self.config.helo_name,
            start_tls=False,
        )
        await client.connect()
        try:
            await client.ehlo()
        except aiosmtplib.SMTPHeloError:
            await client.helo()
        return client

    async def _mx_hosts(self, domain: str) -> list[str]:
        try:
            answer = await self.resolver.resolve(domain, "MX")
        except dns.resolver.NoAnswer:
            return [domain]
        records = [(r.preference, r.exchange) for r in answer]
        hosts = [(p, e) for p, e in records if e != dns.name.root]
        if not hosts:
            raise NullMx(f"{domain} accepts no mail (null MX)")
        # Equal preferences share the load (RFC 5321 section 5.1).
        random.shuffle(hosts)
        hosts.sort(key=lambda record: record[0])
        return [exchange.to_text(omit_final_dot=True) for _, exchange in hosts]

    async def _addresses(self, host: str) -> list[str]:
        try:
            return [str(ipaddress.ip_address(host))]
        except ValueError:
            pass
        found: list[str] = []
        failures: list[BaseException] = []
        for rdtype in ("A", "AAAA"):
            try:
                answer = await self.resolver.resolve(host, rdtype)
            except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
                continue
            except dns.exception.DNSException as error:
                failures.append(error)
                continue
            found += [record.to_text() for record in answer]
        if not found:
            if failures:
                raise failures[0]
            raise LookupError(f"{host} has no address")
        return found

    async def close(self) -> None:
        destinations, self._destinations = self._destinations, {}
        for destination in destinations.values():
            for connection in destination.idle:
                try:
                    await connection.client.quit()
                except Exception:  # the server may have gone already
                    connection.client.close()


def _domain_of(recipient: str) -> str:
    domain = recipient.rsplit("@", 1)[1].rstrip(".").lower()
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return domain


def _tls_context(*, verified: bool) -> ssl.SSLContext:
    if verified:
        return ssl.create_default_context()
    # Opportunistic TLS (RFC 7435): encrypt against passive observers even when the
    # receiver's certificate would not verify, as most MX certificates do not.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context
