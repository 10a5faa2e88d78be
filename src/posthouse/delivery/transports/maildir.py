"""Local delivery into a Maildir: the embedded default, so a fresh install sends nowhere."""

import asyncio
import mailbox
from pathlib import Path

from posthouse.delivery.transports.base import Outcome, OutgoingMail, SendResult


class MaildirTransport:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._maildir = mailbox.Maildir(str(path), create=True)

    async def send(self, mail: OutgoingMail) -> SendResult:
        # As a local delivery agent would, record the envelope: Bcc appears nowhere else.
        trace = (
            f"Return-Path: <{mail.envelope_from}>\r\nDelivered-To: {mail.recipient}\r\n"
        ).encode("ascii")
        key = await asyncio.to_thread(self._maildir.add, trace + mail.data)
        return SendResult(Outcome.SENT, 250, f"delivered to maildir as {key}", "maildir")

    async def close(self) -> None:
        return None
