"""The native API's codes for the size rules: 413 for too large, 422 for bad files."""

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.conftest import SenderTokens, multipart
from tests.helpers import NOTHING_STORED, stored_rows

PAYLOAD = {
    "from": "no-reply@yourstore.example",
    "to": ["alice@example.com"],
    "subject": "Files",
    "body": "<p>Files</p>",
}
MB = 1024 * 1024


class TestSizeCodes:
    async def test_an_attachment_over_5_mb_is_a_413_and_nothing_is_stored(
        self,
        client: httpx.AsyncClient,
        sender: SenderTokens,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        response = await client.post(
            "/api/v1/emails",
            headers=sender.headers,
            **multipart(PAYLOAD, [("big.pdf", b"x" * (5 * MB + 1), "application/pdf")]),
        )

        assert response.status_code == 413
        assert response.json()["status"] == 413
        assert await stored_rows(sessionmaker) == NOTHING_STORED

    async def test_duplicate_filenames_are_a_422(
        self, client: httpx.AsyncClient, sender: SenderTokens
    ) -> None:
        files = [("a.txt", b"1", "text/plain"), ("A.TXT", b"2", "text/plain")]

        response = await client.post(
            "/api/v1/emails", headers=sender.headers, **multipart(PAYLOAD, files)
        )

        assert response.status_code == 422
        assert "duplicate" in response.json()["message"]

    async def test_a_renamed_executable_is_refused(
        self, client: httpx.AsyncClient, sender: SenderTokens
    ) -> None:
        elf = b"\x7fELF\x02\x01\x01" + b"\x00" * 64

        response = await client.post(
            "/api/v1/emails",
            headers=sender.headers,
            **multipart(PAYLOAD, [("invoice.pdf", elf, "application/pdf")]),
        )

        assert response.status_code == 422
        assert response.json()["message"].startswith("Attachments type forbidden")
