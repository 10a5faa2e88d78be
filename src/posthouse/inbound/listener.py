"""The SMTP listener for the return-path domains: bounces and complaints come in here.

It runs in the caller's event loop (inside ``posthouse serve``, or alone as ``posthouse
inbound``), so it shares the process's database engine. A report is answered 250 only
after it was committed; a database failure answers 451 so the sender retries: nothing
accepted is lost.
"""

import asyncio
import logging
import socket

from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posthouse.config import Settings
from posthouse.domains.dns import split_host_port
from posthouse.inbound import service as inbound_service
from posthouse.tracking import service as tracking_service
from posthouse.tracking.tokens import TokenSigner

log = logging.getLogger(__name__)

_MAX_RECIPIENTS = 20


class InboundHandler:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        secret: str,
        signer: TokenSigner | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.secret = secret
        self.signer = signer  # verifies List-Unsubscribe mailto addresses

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if len(envelope.rcpt_tos) >= _MAX_RECIPIENTS:
            return "452 4.5.3 Too many recipients"
        try:
            async with self.sessionmaker() as db:
                accepted = await inbound_service.accepts_recipient(db, address=address)
        except Exception:  # the database is away: ask the sender to come back
            log.exception("checking inbound recipient %s failed", address)
            return "451 4.3.0 Temporary failure, please try again later"
        if not accepted:
            return "550 5.1.1 No such recipient here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        try:
            async with self.sessionmaker.begin() as db:
                outcome = await inbound_service.process_report(
                    db,
                    mail_from=envelope.mail_from or "",
                    rcpt_tos=list(envelope.rcpt_tos),
                    raw=raw,
                    secret=self.secret,
                    signer=self.signer,
                )
        except Exception:  # not committed: the sender keeps the report and retries
            log.exception("recording an inbound report failed")
            return "451 4.3.0 Temporary failure, please try again later"
        log.info(
            "inbound report %s from <%s>: %s %s (%s)",
            outcome.report_id,
            envelope.mail_from,
            outcome.kind,
            outcome.status,
            outcome.detail,
        )
        return f"250 2.0.0 Report {outcome.report_id} {outcome.status}"


class InboundServer:
    """An aiosmtpd server bound to ``settings.inbound_bind`` in the running loop."""

    def __init__(self, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.settings = settings
        self.handler = InboundHandler(
            sessionmaker, settings.secret_key.get_secret_value(), tracking_service.signer(settings)
        )
        self.host, self.port = split_host_port(settings.inbound_bind, default_port=2525)
        # aiosmtpd would otherwise call the blocking socket.getfqdn() on every connection.
        self.hostname = settings.helo_name or socket.getfqdn()
        self._server: asyncio.Server | None = None

    async def start(self) -> "InboundServer":
        # aiosmtpd logs every SMTP command at INFO: one line per report is enough.
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(
                self.handler,
                data_size_limit=self.settings.inbound_max_bytes,
                hostname=self.hostname,
                ident="posthouse inbound",
                timeout=60,
            ),
            host=self.host,
            port=self.port,
        )
        log.info("inbound SMTP listening on %s:%d", self.host, self.port)
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
