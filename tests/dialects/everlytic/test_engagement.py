"""Seed 002's engagement options through the shared tracking: opens, links, tracked
attachments and the unsubscribe redirect, in the copies the SMTP server receives."""

import base64

import httpx
import pytest

from posthouse.config import Settings
from posthouse.delivery.worker import Worker
from tests.dialects.everlytic.conftest import URL, Account, mail
from tests.smtp_server import SmtpServer
from tests.tracking.conftest import PUBLIC_URL, html_of, paths, text_of

BODY = '<p>Hello <a href="https://shop.example/orders/1">your order</a></p>'


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"public_url": PUBLIC_URL})


async def test_track_opens_and_links_put_a_pixel_and_tracked_links_in_the_copy(
    client: httpx.AsyncClient, account: Account, worker: Worker, smtp_server: SmtpServer
) -> None:
    payload = mail(
        body={"html": BODY, "text": "Your order: https://shop.example/orders/1"},
        options={"track_opens": True, "track_links": True},
    )

    response = await client.post(URL, json=payload, auth=account.auth)

    assert response.status_code == 200, response.text
    await worker.run_until_idle()
    sent = smtp_server.received[0].message()
    assert len(paths(html_of(sent), "t/o")) == 1
    assert len(paths(html_of(sent), "t/c")) == 1
    assert len(paths(text_of(sent), "t/c")) == 1
    assert "https://shop.example/orders/1" not in html_of(sent)


async def test_without_the_options_nothing_is_tracked(
    client: httpx.AsyncClient, account: Account, worker: Worker, smtp_server: SmtpServer
) -> None:
    payload = mail(body={"html": BODY}, options={"track_opens": False, "track_links": False})

    response = await client.post(URL, json=payload, auth=account.auth)

    assert response.status_code == 200, response.text
    await worker.run_until_idle()
    html = html_of(smtp_server.received[0].message())
    assert paths(html, "t/o") == paths(html, "t/c") == []
    assert "https://shop.example/orders/1" in html


async def test_a_tracked_attachment_becomes_a_link_that_serves_the_file(
    client: httpx.AsyncClient, account: Account, worker: Worker, smtp_server: SmtpServer
) -> None:
    pdf = b"%PDF-1.4 invoice " * 50
    payload = mail(
        body={"html": BODY},
        attachments={
            "data": [{"filename": "invoice.pdf", "data": base64.b64encode(pdf).decode()}],
            "options": {"track": True},
        },
    )

    response = await client.post(URL, json=payload, auth=account.auth)

    assert response.status_code == 200, response.text
    await worker.run_until_idle()
    sent = smtp_server.received[0].message()
    assert list(sent.iter_attachments()) == []
    [link] = paths(html_of(sent), "t/a")
    served = await client.get(link, headers={"User-Agent": "Mozilla/5.0 Firefox/128.0"})
    assert served.status_code == 200
    assert served.content == pdf


async def test_after_a_one_click_unsubscribe_the_recipient_is_sent_to_the_redirect_url(
    client: httpx.AsyncClient, account: Account, worker: Worker, smtp_server: SmtpServer
) -> None:
    payload = mail(options={"unsubscribe_redirect_url": "https://shop.example/goodbye"})

    response = await client.post(URL, json=payload, auth=account.auth)

    assert response.status_code == 200, response.text
    await worker.run_until_idle()
    header = smtp_server.received[0].message()["List-Unsubscribe"]
    [path] = paths(header, "u")
    unsubscribed = await client.post(path, data={"List-Unsubscribe": "One-Click"})
    assert unsubscribed.status_code == 303
    assert unsubscribed.headers["location"] == "https://shop.example/goodbye"
    again = await client.post(URL, json=mail(), auth=account.auth)
    assert again.json()["error"]["errors"][0]["reason"] == "Suppressed"
