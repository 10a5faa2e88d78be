"""FastAPI application factory. Engines and transports are built in the lifespan."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import text
from starlette.exceptions import HTTPException

from posthouse import __version__
from posthouse.accounts.service import CredentialCache, WorkspaceKeyCache
from posthouse.api import tracking as tracking_router
from posthouse.api.admin import domains as domains_router
from posthouse.api.admin import suppressions as suppressions_router
from posthouse.api.admin import templates as templates_router
from posthouse.api.admin import usecases as usecases_router
from posthouse.api.dialects.emailmassivo import routes as emailmassivo
from posthouse.api.dialects.emailmassivo.errors import render_error as emailmassivo_render_error
from posthouse.api.dialects.envelope import routes as envelope
from posthouse.api.dialects.envelope.errors import render_error as envelope_render_error
from posthouse.api.dialects.everlytic import routes as everlytic
from posthouse.api.dialects.everlytic.errors import render_error as everlytic_render_error
from posthouse.api.dialects.sendclean import routes as sendclean
from posthouse.api.dialects.sendclean.errors import render_error as sendclean_render_error
from posthouse.api.errors import ErrorRenderer, app_error_handler
from posthouse.api.limits import BodySizeLimit
from posthouse.api.native import history as native_history
from posthouse.api.native import routes as native
from posthouse.api.native.errors import render_error
from posthouse.api.rate_limits import RateLimitHeaders
from posthouse.config import Settings, get_settings
from posthouse.db.engine import create_engine, create_sessionmaker, create_side_engine
from posthouse.delivery.transports.factory import create_transport
from posthouse.delivery.worker import Worker
from posthouse.domains.service import VerifiedDomainCache
from posthouse.heap import freeze_startup_heap
from posthouse.history.downloads import Downloads
from posthouse.history.paging import Tokens
from posthouse.inbound.listener import InboundServer
from posthouse.sending.accept import AcceptContext
from posthouse.templates import service as templates_service
from posthouse.templates.content import TemplateContent
from posthouse.templates.personalise import Personaliser

log = logging.getLogger(__name__)

# Each compatible door's path prefix and error shape, for what happens outside its routes
# (an unknown path or method under it). Paths under none of them get the native shape.
DOOR_ERROR_SHAPES: list[tuple[str, ErrorRenderer]] = [
    ("/v1/", envelope_render_error),
    ("/api/v1/external-mails/", emailmassivo_render_error),
    ("/messages/", sendclean_render_error),
    ("/v1.0/", sendclean_render_error),
    ("/transactional/email/", everlytic_render_error),
]
# Seed 003's paths: the document names both.
SENDCLEAN_PREFIXES = ("/messages", "/v1.0/messages")


def create_app(
    settings: Settings | None = None, *, embedded_worker: bool = False, server: bool = False
) -> FastAPI:
    """The API; with ``embedded_worker`` it also delivers and takes bounce and complaint
    reports on ``settings.inbound_bind`` (``posthouse serve``). ``server``: a process of
    its own (``posthouse serve`` and ``api``), which freezes its start-up heap."""
    settings = settings or get_settings()
    settings.check_production_secrets()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url)
        app.state.settings = settings
        app.state.engine = engine
        app.state.side_engine = create_side_engine(settings.database_url)
        app.state.sessionmaker = create_sessionmaker(engine)
        ttl = settings.auth_cache_seconds
        app.state.credential_cache = CredentialCache(ttl=ttl) if ttl > 0 else None
        app.state.workspace_key_cache = WorkspaceKeyCache(ttl=ttl) if ttl > 0 else None
        app.state.verified_domains = VerifiedDomainCache(ttl=ttl) if ttl > 0 else None
        secret = settings.secret_key.get_secret_value()
        app.state.history_tokens = Tokens(secret)
        app.state.downloads = Downloads(secret, lifetime=settings.attachment_url_seconds)
        app.state.worker = None
        app.state.inbound = None
        worker_task = None
        stop = asyncio.Event()
        if embedded_worker:
            transport = create_transport(settings)
            app.state.worker = Worker(
                sessionmaker=app.state.sessionmaker,
                transport=transport,
                settings=settings,
                recipient_hook=Personaliser(),
            )
            worker_task = asyncio.create_task(app.state.worker.run(stop), name="posthouse-worker")
            app.state.inbound = await InboundServer(settings, app.state.sessionmaker).start()
        app.state.accept = AcceptContext(
            settings=settings,
            verified_domains=app.state.verified_domains,
            side_engine=app.state.side_engine,
            wake_worker=app.state.worker.wakeup.set if app.state.worker is not None else None,
            content=TemplateContent(
                versions=templates_service.VersionCache(ttl=ttl) if ttl > 0 else None
            ),
        )
        if server:
            freeze_startup_heap()
        try:
            yield
        finally:
            if app.state.inbound is not None:
                await app.state.inbound.stop()
            if worker_task is not None:
                stop.set()
                await worker_task
                await app.state.worker.transport.close()
            if app.state.side_engine is not None:
                await app.state.side_engine.dispose()
            await engine.dispose()

    app = FastAPI(
        title="posthouse",
        version=__version__,
        description="Self-hosted transactional email API.",
        lifespan=lifespan,
    )
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    app.add_middleware(RateLimitHeaders)
    app.include_router(native.router)
    app.include_router(native_history.router)
    app.include_router(suppressions_router.router)
    app.include_router(domains_router.router)
    app.include_router(templates_router.router)
    app.include_router(tracking_router.hits)
    app.include_router(tracking_router.router)
    app.include_router(usecases_router.router)
    app.include_router(envelope.router)
    app.include_router(envelope.downloads_router)
    app.include_router(emailmassivo.router)
    for prefix in SENDCLEAN_PREFIXES:
        app.include_router(sendclean.router, prefix=prefix)
    app.include_router(everlytic.router)
    # Unknown paths and methods: the shape of the door whose prefix the path is under,
    # else the native one, like every route's own errors.
    handler = app_error_handler(render_error, DOOR_ERROR_SHAPES)
    app.add_exception_handler(HTTPException, handler)
    app.add_exception_handler(RequestValidationError, handler)

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


def create_server_app() -> FastAPI:
    """The app as each ``posthouse api`` process runs it (uvicorn's factory)."""
    return create_app(server=True)
