"""The reference point for (a): bare FastAPI parsing the seed-000 multipart body and
inserting one row into PostgreSQL, one commit per request. No posthouse code.

    BARE_DATABASE_URL=postgresql://... uvicorn bench.bare_app:app --workers 2

spine.py runs it with the same wrk load as posthouse, so the ratio between the two says
how close posthouse is to what the framework allows on the machine at hand.
"""

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

POOL_SIZE = 10
TABLE = """CREATE TABLE IF NOT EXISTS bare_send (
    id uuid PRIMARY KEY, payload jsonb NOT NULL, filename text, data bytea
)"""


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    url = os.environ["BARE_DATABASE_URL"]
    pool: asyncio.Queue[psycopg.AsyncConnection[tuple[object, ...]]] = asyncio.Queue()
    for _ in range(POOL_SIZE):
        pool.put_nowait(await psycopg.AsyncConnection.connect(url))
    app.state.pool = pool
    yield
    while not pool.empty():
        await pool.get_nowait().close()


app = FastAPI(lifespan=lifespan)


@app.post("/api/v1/emails", status_code=202)
async def send(request: Request) -> JSONResponse:
    form = await request.form()
    payload = json.loads(form["payload"])  # type: ignore[arg-type]
    upload = form["attachments"]
    data = await upload.read()  # type: ignore[union-attr]
    pool = request.app.state.pool
    connection = await pool.get()
    try:
        async with connection.transaction():
            await connection.execute(
                "INSERT INTO bare_send (id, payload, filename, data) VALUES (%s, %s, %s, %s)",
                (uuid.uuid4(), json.dumps(payload), upload.filename, data),  # type: ignore[union-attr]
            )
    finally:
        pool.put_nowait(connection)
    await form.close()
    return JSONResponse({"status": "queued"}, status_code=202)
