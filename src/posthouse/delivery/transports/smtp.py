"""Relay through a smarthost, reusing a small pool of authenticated connections."""

import asyncio
import logging
from dataclasses import dataclass

import aiosmtplib

from posthouse.delivery.outcomes import classify
from posthouse.delivery.transports.base import Outcome, OutgoingMail, SendResult
from posthouse.delivery.transports.sendmail import sendmail

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RelayConfig:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: str = "none"  # none, starttls, implicit
    timeout: float = 60.0
    connections: int = 8
    helo_name: str | None = None


class SmtpRelayTransport:
    def __init__(self, config: RelayConfig) -> None:
        self.config = config
        self._idle: list[aiosmtplib.SMTP] = []
        self._slots = asyncio.Semaphore(config.connections)

    async def _connect(self) -> aiosmtplib.SMTP:
        config = self.config
        client = aiosmtplib.SMTP(
            hostname=config.host,
            port=config.port,
            use_tls=config.tls == "implicit",
            start_tls=config.tls == "starttls",
            timeout=config.timeout,
            local_hostname=config.helo_name,
            username=config.username,
            password=config.password,
        )
        await client.connect()
        return client

    async def send(self, mail: OutgoingMail) -> SendResult:
        async with self._slots:
            client = self._idle.pop() if self._idle else None
            for reused in (True, False):
                if client is None:
                    reused = False
                    try:
                        client = await self._connect()
                    except Exception as error:  # classified below: every failure becomes an outcome
                        return classify(error, remote_host=self.config.host)
                try:
                    reply = await sendmail(
                        client, mail.envelope_from, mail.recipient, mail.data, crlf=mail.crlf
                    )
                except aiosmtplib.SMTPServerDisconnected as error:
                    client = None
                    if reused:
                        # An idle connection the server closed: nothing was accepted, so a
                        # fresh connection may try at once.
                        continue
                    return classify(error, remote_host=self.config.host)
                except aiosmtplib.SMTPResponseException as error:
                    # sendmail sent RSET; the connection is still good.
                    self._release(client)
                    return classify(error, remote_host=self.config.host)
                except Exception as error:  # classified below: every failure becomes an outcome
                    await self._discard(client)
                    return classify(error, remote_host=self.config.host)
                self._release(client)
                return SendResult(Outcome.SENT, 250, reply, self.config.host)
            raise AssertionError("unreachable")

    def _release(self, client: aiosmtplib.SMTP) -> None:
        if client.is_connected:
            self._idle.append(client)

    async def _discard(self, client: aiosmtplib.SMTP) -> None:
        try:
            client.close()
        except Exception:  # already broken
            log.debug("closing a broken SMTP connection failed", exc_info=True)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for client in idle:
            try:
                await client.quit()
            except Exception:  # the server may have gone already
                client.close()
