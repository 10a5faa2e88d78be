"""A real SMTP server (aiosmtpd) on loopback that records what it receives.

Tests script its answers: ``server.rcpt_replies`` / ``server.data_replies`` are queues of
replies returned in order (then 250), ``server.data_delay`` holds DATA open, and so does
``server.data_gate`` (a ``threading.Event``) until the test sets it. Like
Postfix, it offers PIPELINING unless told not to, and notes for every MAIL whether the
client had already sent the commands after it.
"""

import asyncio
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    peer: Any = None  # the client's (address, port): equal for mail sent on one connection
    tls: bool = False

    def message(self) -> EmailMessage:
        parsed = BytesParser(policy=policy.strict).parsebytes(self.data)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class RecordingHandler:
    received: list[Received] = field(default_factory=list)
    rcpt_replies: deque[str] = field(default_factory=deque)
    data_replies: deque[str] = field(default_factory=deque)
    data_delay: float = 0.0
    data_gate: threading.Event | None = None
    mail_replies: deque[str] = field(default_factory=deque)
    pipelining: bool = True
    # One entry per MAIL: whether RCPT and DATA were already waiting behind it.
    pipelined: list[bool] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        # aiosmtpd reads one command at a time: what the client sent after MAIL is still
        # in the reader's buffer.
        waiting = bytes(server._reader._buffer)  # type: ignore[attr-defined]
        with self.lock:
            self.pipelined.append(b"RCPT TO:" in waiting and b"DATA" in waiting)
            reply = self.mail_replies.popleft() if self.mail_replies else None
        if reply:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        with self.lock:
            reply = self.rcpt_replies.popleft() if self.rcpt_replies else None
        if reply and not reply.startswith("250"):
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        if self.data_gate is not None:
            await asyncio.to_thread(self.data_gate.wait)
        with self.lock:
            reply = self.data_replies.popleft() if self.data_replies else "250 2.0.0 Queued"
        if reply.startswith("250"):
            data = envelope.original_content or b""
            self.received.append(
                Received(
                    envelope.mail_from or "",
                    list(envelope.rcpt_tos),
                    data,
                    session.peer,
                    session.ssl is not None,
                )
            )
        return reply


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SmtpServer:
    def __init__(
        self,
        handler: RecordingHandler | None = None,
        *,
        hostname: str = "127.0.0.1",
        port: int | None = None,
        **kwargs: Any,
    ) -> None:
        self.handler = handler or RecordingHandler()
        self.controller = Controller(
            self.handler,
            hostname=hostname,
            port=port or free_port(),
            data_size_limit=60 * 2**20,
            **kwargs,
        )

    def start(self) -> "SmtpServer":
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    @property
    def port(self) -> int:
        return int(self.controller.port)

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.received
