"""FastAPI application factory. Engines and transports are built in the lifespan."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import text

from posthouse import __version__
from posthouse.api import native
from posthouse.api.limits import BodySizeLimit
from posthouse.config import Settings, get_settings
from posthouse.db.engine import create_engine, create_sessionmaker
from posthouse.delivery.transports.factory import create_transport
from posthouse.delivery.worker import Worker

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, *, embedded_worker: bool = False) -> FastAPI:
    """The API; with ``embedded_worker`` it also delivers (``posthouse serve``)."""
    settings = settings or get_settings()
    settings.check_production_secrets()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url)
        app.state.settings = settings
        app.state.engine = engine
        app.state.sessionmaker = create_sessionmaker(engine)
        app.state.worker = None
        worker_task = None
        stop = asyncio.Event()
        if embedded_worker:
            transport = create_transport(settings)
            app.state.worker = Worker(
                sessionmaker=app.state.sessionmaker, transport=transport, settings=settings
            )
            worker_task = asyncio.create_task(app.state.worker.run(stop), name="posthouse-worker")
        try:
            yield
        finally:
            if worker_task is not None:
                stop.set()
                await worker_task
                await app.state.worker.transport.close()
            await engine.dispose()

    app = FastAPI(
        title="posthouse",
        version=__version__,
        description="Self-hosted transactional email API.",
        lifespan=lifespan,
    )
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    app.include_router(native.router)

    @app.get("/healthz", tags=["operations"], summary="Liveness and database reachability")
    async def healthz() -> JSONResponse:
        """200 when the database answers, 503 when it does not."""
        try:
            async with app.state.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception as error:  # any database failure means "not healthy"
            log.warning("health check failed: %r", error)
            return JSONResponse(
                {"status": "unavailable", "database": "unreachable"}, status_code=503
            )
        return JSONResponse({"status": "ok", "database": "ok"})

    return app
