"""The worker's own sendmail against a real SMTP server: what arrives, and refusals."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager

import aiosmtplib
import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from posthouse.delivery.outcomes import ReplyLost
from posthouse.delivery.transports.sendmail import data_payload, sendmail
from tests.smtp_server import RecordingHandler, SmtpServer


@pytest.mark.parametrize(
    ("message", "payload"),
    [
        (b"A: b\r\n\r\nbody\r\n", b"A: b\r\n\r\nbody\r\n.\r\n"),
        (b"A: b\r\n\r\n.x\r\n..two\r\n.\r\n", b"A: b\r\n\r\n..x\r\n...two\r\n..\r\n.\r\n"),
        (b".first\r\n", b"..first\r\n.\r\n"),
        (b"A: b\r\n\r\nno final line ending", b"A: b\r\n\r\nno final line ending\r\n.\r\n"),
        (b"A: b\n\nbare\nlf\r\n.dot\rcr\n", b"A: b\r\n\r\nbare\r\nlf\r\n..dot\r\ncr\r\n.\r\n"),
    ],
)
def test_data_payload_ends_lines_in_crlf_and_doubles_leading_dots(
    message: bytes, payload: bytes
) -> None:
    assert data_payload(message) == payload


@pytest.fixture(params=[True, False], ids=["pipelining", "one-by-one"])
def smtp_server(request: pytest.FixtureRequest) -> Iterator[SmtpServer]:
    # aiosmtpd offers SMTPUTF8 by default; the recording handler offers PIPELINING.
    server = SmtpServer(RecordingHandler(pipelining=request.param)).start()
    yield server
    server.stop()


@pytest.fixture
async def client(smtp_server: SmtpServer) -> AsyncIterator[aiosmtplib.SMTP]:
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=smtp_server.port, timeout=5)
    await smtp.connect()
    yield smtp
    smtp.close()


MESSAGE = b"Subject: dots\r\n\r\n.starts with a dot\r\n..two dots\r\nplain\r\n.\r\nend\r\n"


Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def scripted_server(script: Script, *, wait: float) -> AsyncIterator[aiosmtplib.SMTP]:
    """A client (waiting ``wait`` seconds for a reply) connected to a raw server that
    plays ``script``: for what aiosmtpd never does."""
    server = await asyncio.start_server(script, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=wait, start_tls=False)
    try:
        await smtp.connect()
        yield smtp
    finally:
        smtp.close()
        server.close()


async def test_message_arrives_byte_for_byte(
    client: aiosmtplib.SMTP, smtp_server: SmtpServer
) -> None:
    reply = await sendmail(client, "bounce@ex.example", "alice@example.com", MESSAGE)

    (received,) = smtp_server.wait_for(1)
    assert "Queued" in reply
    assert received.mail_from == "bounce@ex.example"
    assert received.rcpt_tos == ["alice@example.com"]
    assert received.data == MESSAGE


async def test_a_refused_recipient_leaves_the_connection_usable(
    client: aiosmtplib.SMTP, smtp_server: SmtpServer
) -> None:
    smtp_server.handler.rcpt_replies.append("550 5.1.1 No such user")

    with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
        await sendmail(client, "bounce@ex.example", "gone@example.com", MESSAGE)
    await sendmail(client, "bounce@ex.example", "alice@example.com", MESSAGE)

    assert refused.value.recipients[0].code == 550
    assert [r.rcpt_tos for r in smtp_server.wait_for(1)] == [["alice@example.com"]]


async def test_mail_rcpt_and_data_go_together_to_a_server_that_offers_pipelining(
    client: aiosmtplib.SMTP, smtp_server: SmtpServer
) -> None:
    await sendmail(client, "bounce@ex.example", "alice@example.com", MESSAGE)
    await sendmail(client, "bounce@ex.example", "bob@example.com", MESSAGE)

    offered = smtp_server.handler.pipelining
    assert smtp_server.handler.pipelined == [offered, offered]
    assert [r.data for r in smtp_server.wait_for(2)] == [MESSAGE, MESSAGE]


async def test_data_accepted_after_a_refused_recipient_is_ended_at_once() -> None:
    # RFC 2920 3.1 lets a server answer DATA with 354 although it refused every
    # recipient; the client must then end the empty message itself. aiosmtpd never does
    # this, so a scripted server plays it.
    lines: list[bytes] = []
    replies = {
        b"EHLO": b"250-sink\r\n250-PIPELINING\r\n250 8BITMIME\r\n",
        b"MAIL": b"250 OK\r\n",
        b"RCPT": b"550 5.1.1 No such user\r\n",
        b"DATA": b"354 Go ahead\r\n",
        b".": b"554 5.5.1 No valid recipients\r\n",
        b"RSET": b"250 OK\r\n",
        b"NOOP": b"250 OK\r\n",
    }

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 sink ESMTP\r\n")
        while line := await reader.readline():
            lines.append(line)
            writer.write(replies[line.split()[0].rstrip(b"\r\n")])
        writer.close()

    async with scripted_server(session, wait=5) as smtp:
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
            await sendmail(smtp, "bounce@ex.example", "gone@example.com", MESSAGE)
        await smtp.noop()

    assert refused.value.recipients[0].code == 550
    assert [line.split()[0] for line in lines[1:]] == [
        b"MAIL",
        b"RCPT",
        b"DATA",
        b".",
        b"RSET",
        b"NOOP",
    ]


@pytest.mark.parametrize(
    ("replies", "reply", "refusal", "code"),
    [
        ("mail_replies", "451 4.3.0 Try again later", aiosmtplib.SMTPSenderRefused, 451),
        ("data_replies", "452 4.3.1 Insufficient storage", aiosmtplib.SMTPDataError, 452),
    ],
    ids=["sender", "message"],
)
async def test_a_refused_sender_or_message_leaves_the_connection_usable(
    client: aiosmtplib.SMTP,
    smtp_server: SmtpServer,
    replies: str,
    reply: str,
    refusal: type[aiosmtplib.SMTPResponseException],
    code: int,
) -> None:
    getattr(smtp_server.handler, replies).append(reply)

    with pytest.raises(refusal) as refused:
        await sendmail(client, "bounce@ex.example", "alice@example.com", MESSAGE)
    await sendmail(client, "bounce@ex.example", "bob@example.com", MESSAGE)

    assert refused.value.code == code
    assert [r.rcpt_tos for r in smtp_server.wait_for(1)] == [["bob@example.com"]]


async def test_a_non_ascii_mailbox_goes_with_smtputf8(
    client: aiosmtplib.SMTP, smtp_server: SmtpServer
) -> None:
    await sendmail(client, "bounce@ex.example", "jürgen@example.com", MESSAGE)

    assert [r.rcpt_tos for r in smtp_server.wait_for(1)] == [["jürgen@example.com"]]


async def test_a_non_ascii_mailbox_is_refused_without_smtputf8() -> None:
    server = SmtpServer(enable_SMTPUTF8=False).start()
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=server.port, timeout=5)
    try:
        await smtp.connect()
        with pytest.raises(aiosmtplib.SMTPNotSupported):
            await sendmail(smtp, "bounce@ex.example", "jürgen@example.com", MESSAGE)
    finally:
        smtp.close()
        server.stop()
    assert server.received == []


class NoEsmtpHandler(RecordingHandler):
    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        return ["502 5.5.1 EHLO not implemented"]


async def test_a_server_without_esmtp_is_greeted_with_helo() -> None:
    server = SmtpServer(NoEsmtpHandler()).start()
    # As the relay transport connects: no STARTTLS probe, so no greeting on connect.
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=server.port, timeout=5, start_tls=False)
    try:
        await smtp.connect()
        await sendmail(smtp, "bounce@ex.example", "alice@example.com", MESSAGE)
    finally:
        smtp.close()
        server.stop()

    assert [r.data for r in server.wait_for(1)] == [MESSAGE]


@pytest.mark.parametrize("ending", ["silence", "hang-up"])
async def test_a_server_that_stops_answering_a_pipelined_group_fails_the_send(
    ending: str,
) -> None:
    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 sink ESMTP\r\n")
        await reader.readline()
        writer.write(b"250-sink\r\n250 PIPELINING\r\n")
        await reader.readline()  # MAIL: no answer
        if ending == "silence":
            await reader.read()
        writer.close()

    expected: type[Exception] = aiosmtplib.SMTPServerDisconnected
    if ending == "silence":
        expected = aiosmtplib.SMTPReadTimeoutError
    async with scripted_server(session, wait=0.3) as smtp:
        with pytest.raises(expected):
            await sendmail(smtp, "bounce@ex.example", "alice@example.com", MESSAGE)
        assert not smtp.is_connected


@pytest.mark.parametrize("ending", ["silence", "hang-up"])
async def test_no_reply_after_the_whole_message_is_the_ambiguous_case(ending: str) -> None:
    # RFC 1047: the server may have queued the message before its reply was lost, so the
    # caller must not take this for a connection that failed before anything was sent.
    received = asyncio.Event()

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 sink ESMTP\r\n")
        await reader.readline()
        writer.write(b"250 sink\r\n")
        for reply in (b"250 OK\r\n", b"250 OK\r\n", b"354 Go ahead\r\n"):
            await reader.readline()
            writer.write(reply)
        await reader.readuntil(b"\r\n.\r\n")
        received.set()
        if ending == "silence":
            await reader.read()
        writer.close()

    async with scripted_server(session, wait=0.3) as smtp:
        with pytest.raises(ReplyLost):
            await sendmail(smtp, "bounce@ex.example", "alice@example.com", MESSAGE)
        assert not smtp.is_connected
    assert received.is_set()
