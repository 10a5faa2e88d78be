"""The scorers' findings of issue 18, on mail as the receiving server gets it: sent
through the native API, built and signed by the worker, read back from a real SMTP
server. (The rules themselves: test_text.py, test_builder.py, test_dkim.py.)"""

import httpx

from posthouse.delivery.worker import Worker
from tests.conftest import SenderTokens, multipart
from tests.smtp_server import SmtpServer

SUBJECT = "Grüße aus Köln – Ihre Bestellung №12345 ist unterwegs 🚚 " * 3
FRAGMENT = (
    '<p>Questions? <a href="mailto:help@shop.example?subject=Order">Write to us</a> or '
    '<a href="tel:+15551234">call</a>.</p>'
    "<pre>\nOrder 12345\n    2 x Widget\n</pre>"
    "<ol><li>Pack</li><li>Ship</li></ol>"
)


async def test_the_delivered_copy_keeps_what_the_scorers_asked_for(
    client: httpx.AsyncClient, sender: SenderTokens, worker: Worker, smtp_server: SmtpServer
) -> None:
    payload = {"from": sender.email, "to": ["alice@example.com"], "subject": SUBJECT,
               "body": FRAGMENT}  # fmt: skip
    response = await client.post("/api/v1/emails", headers=sender.headers, **multipart(payload))
    assert response.status_code == 202, response.text
    await worker.run_until_idle()

    [mail] = smtp_server.received
    message = mail.message()
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None
    assert html is not None
    plain = str(text.get_content()).replace("\r\n", "\n")
    assert "Write to us (help@shop.example)" in plain
    assert "call (+15551234)" in plain
    assert "Order 12345\n    2 x Widget" in plain
    assert "1. Pack\n2. Ship" in plain
    assert str(html.get_content()).startswith(
        '<!DOCTYPE html><html><head><meta charset="utf-8"></head><body><p>Questions?'
    )
    assert str(html.get_content()).rstrip().endswith("</ol></body></html>")
    head = mail.data.split(b"\r\n\r\n", 1)[0].decode("ascii")
    encoded = [line for line in head.split("\r\n") if "=?" in line]
    assert encoded
    assert max(map(len, encoded)) <= 76
    assert message["Subject"] == SUBJECT
