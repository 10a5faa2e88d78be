"""One message to one recipient over an open aiosmtplib connection.

aiosmtplib's ``SMTP.sendmail`` rewrites every line ending of the message with a regular
expression, twice when the server offers SIZE, and dot-stuffs it with another: about
0.75 ms of CPU for a 35 KB message, more than a third of what the worker spends per
email. The messages posthouse builds already end every line in CRLF, so this does the
same envelope with aiosmtplib's public commands and prepares the DATA payload with one
``bytes`` replace for the dots; a message not known to be CRLF-clean is first checked
with three counts and normalised when it is not.

To a server that offers PIPELINING (RFC 2920; Postfix, Exim and the large mailbox
providers do), MAIL, RCPT and DATA go in one write and their replies are read together:
two round trips per message instead of four, which halves the time a connection spends
per message to a distant server. aiosmtplib's protocol reads one reply per command
written, so for those three replies the connection is lent to a small reader of its own.
"""

import asyncio
import re
from collections import deque
from typing import cast

import aiosmtplib
from aiosmtplib import SMTPDataError, SMTPRecipientsRefused, SMTPResponseException
from aiosmtplib.protocol import COMMAND_INJECTION_REGEX, SMTPProtocol

from posthouse.delivery.outcomes import ReplyLost

_LINE_ENDINGS = re.compile(rb"\r\n|\n|\r(?!\n)")


def data_payload(message: bytes, *, crlf: bool = False) -> bytes:
    """The DATA payload for ``message``: CRLF line endings, a last line ending, lines
    starting with "." doubled (RFC 5321 4.5.2), and the terminating ".\\r\\n".

    ``crlf``: the caller guarantees every line already ends in CRLF (build_message's
    output), so the three counts that check it, 8% of the worker's instructions per
    email, are skipped."""
    if not crlf:
        pairs = message.count(b"\r\n")
        if message.count(b"\n") != pairs or message.count(b"\r") != pairs:
            message = _LINE_ENDINGS.sub(b"\r\n", message)
    if not message.endswith(b"\r\n"):
        message += b"\r\n"
    if message.startswith(b"."):
        message = b"." + message
    return message.replace(b"\r\n.", b"\r\n..") + b".\r\n"


async def sendmail(
    client: aiosmtplib.SMTP, sender: str, recipient: str, message: bytes, *, crlf: bool = False
) -> str:
    """``client.sendmail(sender, [recipient], message)``, with the same exceptions and
    the same RSET after a refusal, so the connection stays usable. Returns the server's
    reply to the message (a refused recipient raises SMTPRecipientsRefused). ``crlf`` as
    for data_payload."""
    payload = data_payload(message, crlf=crlf)
    if client.is_ehlo_or_helo_needed:
        try:
            await client.ehlo()
        except aiosmtplib.SMTPHeloError:
            await client.helo()  # a server that knows no ESMTP (RFC 5321 4.1.1.1)
    utf8 = not (sender.isascii() and recipient.isascii())
    if utf8 and not client.supports_extension("smtputf8"):
        raise aiosmtplib.SMTPNotSupported("SMTPUTF8 is not supported by this server")
    options = ["SMTPUTF8"] if utf8 else []
    if client.supports_extension("size"):
        options.insert(0, f"SIZE={len(payload) - 3}")
    encoding = "utf-8" if utf8 else "ascii"
    # MAIL and RCPT as raw commands: aiosmtplib's mail() and rcpt() re-parse each address
    # with the email package (and rewrite what it cannot parse); these addresses were
    # validated when the email was accepted, and both paths still refuse control
    # characters, as execute_command does.
    mail = (b"MAIL", b"FROM:<" + sender.encode(encoding) + b">", *(o.encode() for o in options))
    rcpt = (b"RCPT", b"TO:<" + recipient.encode(encoding) + b">")
    try:
        if client.supports_extension("pipelining"):
            replies = await _pipelined(client, [mail, rcpt, (b"DATA",)])
        else:
            replies = [await client.execute_command(*mail)]
            if replies[0].code == 250:
                replies.append(await client.execute_command(*rcpt))
                if replies[1].code in (250, 251):
                    replies.append(await client.execute_command(b"DATA"))
        _check_envelope(replies, sender, recipient)
        response = await _data(client, payload)
    except (SMTPResponseException, SMTPRecipientsRefused):
        try:
            await client.rset()
        except (ConnectionError, SMTPResponseException):
            pass  # the refusal is what the caller needs to see
        raise
    return response.message


def _check_envelope(replies: list[aiosmtplib.SMTPResponse], sender: str, recipient: str) -> None:
    """Raise what aiosmtplib's sendmail raises for the first refusal among the replies to
    MAIL, RCPT and DATA (those sent: without pipelining, none after a refusal)."""
    mail = replies[0]
    if mail.code != 250:
        raise aiosmtplib.SMTPSenderRefused(mail.code, mail.message, sender)
    rcpt = replies[1]
    if rcpt.code not in (250, 251):
        refused = aiosmtplib.SMTPRecipientRefused(rcpt.code, rcpt.message, recipient)
        raise SMTPRecipientsRefused([refused])
    data = replies[2]
    if data.code != 354:
        raise SMTPDataError(data.code, data.message)


async def _pipelined(
    client: aiosmtplib.SMTP, commands: list[tuple[bytes, ...]]
) -> list[aiosmtplib.SMTPResponse]:
    """Send ``commands`` (the last one DATA) in one write and return their replies.

    When DATA was accepted although MAIL or RCPT was refused, the empty message is ended
    at once, as RFC 2920 3.1 asks, so the connection is ready for RSET."""
    protocol = client.protocol
    # A write transport (TCP or TLS; uvloop's too), typed by aiosmtplib as the base class.
    transport = cast(asyncio.Transport | None, protocol.transport if protocol else None)
    if protocol is None or transport is None or transport.is_closing():
        raise aiosmtplib.SMTPServerDisconnected("Connection lost")
    lines = []
    for command in commands:
        if any(COMMAND_INJECTION_REGEX.search(argument) for argument in command):
            raise ValueError("Command arg contains a prohibited control character")
        lines.append(b" ".join(command) + b"\r\n")
    reader = _ReplyReader(protocol)
    transport.set_protocol(reader)
    try:
        async with asyncio.timeout(client.timeout):
            transport.write(b"".join(lines))
            replies = await reader.read(len(commands))
            if replies[-1].code == 354 and any(r.code >= 400 for r in replies[:-1]):
                transport.write(b".\r\n")
                await reader.read(1)
    except TimeoutError as error:
        client.close()
        raise aiosmtplib.SMTPReadTimeoutError("Timed out waiting for server response") from error
    except aiosmtplib.SMTPServerDisconnected:
        client.close()
        raise
    finally:
        if not transport.is_closing():
            transport.set_protocol(protocol)
    return replies


class _ReplyReader(asyncio.Protocol):
    """Reads SMTP replies, any number in one segment, while it holds the connection of
    aiosmtplib's ``protocol``; it passes the connection's end and flow control on."""

    def __init__(self, protocol: SMTPProtocol) -> None:
        self._protocol = protocol
        self._buffer = bytearray()
        self._replies: deque[aiosmtplib.SMTPResponse] = deque()
        self._lines: list[bytes] = []
        self._error: Exception | None = None
        self._waiter: asyncio.Future[None] | None = None

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while (end := self._buffer.find(b"\n")) >= 0:
            line = bytes(self._buffer[: end + 1])
            del self._buffer[: end + 1]
            try:
                code = int(line[:3])
            except ValueError:
                self._fail(SMTPResponseException(-1, f"Malformed SMTP response line: {line!r}"))
                return
            self._lines.append(line[4:].strip(b" \t\r\n"))
            if line[3:4] != b"-":
                message = b"\n".join(self._lines).decode("utf-8", "surrogateescape")
                self._replies.append(aiosmtplib.SMTPResponse(code, message))
                self._lines = []
        self._wake()

    def eof_received(self) -> bool | None:
        self._fail(aiosmtplib.SMTPServerDisconnected("Unexpected EOF received"))
        return self._protocol.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(aiosmtplib.SMTPServerDisconnected("Connection lost"))
        self._protocol.connection_lost(exc)

    def pause_writing(self) -> None:
        self._protocol.pause_writing()

    def resume_writing(self) -> None:
        self._protocol.resume_writing()

    async def read(self, count: int) -> list[aiosmtplib.SMTPResponse]:
        while len(self._replies) < count:
            if self._error is not None:
                raise self._error
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        return [self._replies.popleft() for _ in range(count)]

    def _fail(self, error: Exception) -> None:
        if self._error is None:
            self._error = error
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


async def _data(client: aiosmtplib.SMTP, payload: bytes) -> aiosmtplib.SMTPResponse:
    """Send the message, DATA having been answered with 354, and read the reply."""
    protocol = client.protocol
    if protocol is None:
        raise aiosmtplib.SMTPServerDisconnected("Connection lost")
    try:
        # One write, then one awaited reply: the protocol's contract for a command. The
        # write raises SMTPServerDisconnected if the connection is already gone, before
        # anything of the message left: a fresh connection may then send it at once.
        protocol.write(payload)
    except aiosmtplib.SMTPServerDisconnected:
        client.close()
        raise
    try:
        response = await protocol.read_response(timeout=client.timeout)
    except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError) as error:
        client.close()
        raise ReplyLost(str(error)) from error
    if response.code != 250:
        raise SMTPDataError(response.code, response.message)
    return response
