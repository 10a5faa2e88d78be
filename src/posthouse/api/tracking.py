"""Tracking and unsubscribe endpoints: the links posthouse puts in mail.

Routes only read the request and call tracking.service; every token is verified there.
A token that is not genuine is 404 whatever was wrong with it. Nothing here sets a
cookie, and the click redirect's target comes from the database, never the request.
"""

import base64
import html
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse

from posthouse.api.deps import EngineDep, SessionDep, SettingsDep
from posthouse.api.rate_limits import client_ip
from posthouse.api.routing import front_door_route, sessionless_route
from posthouse.errors import PosthouseError
from posthouse.tracking import service as tracking_service
from posthouse.tracking.service import Visitor


def _render(error: PosthouseError) -> Response:
    # A token that finds nothing is 404 with no detail; a client error keeps its status;
    # a database outage is a 404 too, since a mail client has nothing to retry.
    status = error.status_code if error.status_code < 500 else 404
    return PlainTextResponse("Not found\n", status_code=status)


router = APIRouter(tags=["tracking"], route_class=front_door_route(_render))
# Pixel and click hits: one statement each on a connection of their own, no session.
hits = APIRouter(tags=["tracking"], route_class=sessionless_route(_render))

# Any string: the service refuses anything but a genuine token, with the same 404.
Token = Annotated[str, Path()]
# The smallest transparent GIF.
_PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
_NO_STORE = {"Cache-Control": "no-store, max-age=0", "Pragma": "no-cache"}


def _visitor(request: Request, settings: SettingsDep) -> Visitor:
    return Visitor(
        method=request.method,
        ip=client_ip(request, settings),
        user_agent=request.headers.get("user-agent", ""),
    )


@hits.get("/t/o/{token}", summary="Open pixel")
@hits.head("/t/o/{token}", include_in_schema=False)
async def open_pixel(
    token: Token, request: Request, engine: EngineDep, settings: SettingsDep
) -> Response:
    """Records an Open and answers a 1x1 GIF that must not be cached."""
    await tracking_service.record_open(
        engine,
        signer=tracking_service.signer(settings),
        token=token,
        visitor=_visitor(request, settings),
    )
    return Response(_PIXEL, media_type="image/gif", headers=_NO_STORE)


@hits.get("/t/c/{token}", summary="Tracked link")
@hits.head("/t/c/{token}", include_in_schema=False)
async def click(
    token: Token, request: Request, engine: EngineDep, settings: SettingsDep
) -> Response:
    """Records a Click and redirects to the target recorded when the mail was built."""
    url = await tracking_service.record_click(
        engine,
        signer=tracking_service.signer(settings),
        token=token,
        visitor=_visitor(request, settings),
    )
    return RedirectResponse(url, status_code=302, headers=_NO_STORE)


@router.get("/t/a/{token}", summary="Tracked attachment")
async def attachment(
    token: Token, request: Request, session: SessionDep, settings: SettingsDep
) -> Response:
    """Records a Click naming the file and serves the stored attachment as a download."""
    found = await tracking_service.open_attachment(
        session,
        signer=tracking_service.signer(settings),
        token=token,
        visitor=_visitor(request, settings),
    )
    return Response(
        found.data,
        media_type=found.content_type,
        headers={
            **_NO_STORE,
            # A download, never rendered on posthouse's origin.
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(found.filename)}",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox",
        },
    )


_PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex"><title>{title}</title></head>
<body style="font-family:sans-serif;max-width:32em;margin:3em auto;padding:0 1em">
{body}</body></html>
"""


@router.get("/u/{token}", summary="Unsubscribe page", response_class=HTMLResponse)
async def unsubscribe_page(token: Token, session: SessionDep, settings: SettingsDep) -> Response:
    """A confirmation page whose button POSTs: scanners fetch every GET, so a GET alone
    never unsubscribes anyone."""
    delivery = await tracking_service.unsubscribe_target(
        session, signer=tracking_service.signer(settings), token=token
    )
    body = (
        f"<h1>Unsubscribe</h1><p>Stop sending mail to {html.escape(delivery.recipient)}?</p>"
        f'<form method="post" action="{html.escape(token)}">'
        '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
        '<button type="submit">Unsubscribe</button></form>'
    )
    return HTMLResponse(_PAGE.format(title="Unsubscribe", body=body), headers=_NO_STORE)


@router.post("/u/{token}", summary="One-click unsubscribe (RFC 8058)")
async def unsubscribe(
    token: Token, request: Request, session: SessionDep, settings: SettingsDep
) -> Response:
    """Unsubscribes at once, with no cookie and no confirmation, then sends the browser to
    the redirect URL given at send time, if any."""
    delivery = await tracking_service.unsubscribe(
        session,
        signer=tracking_service.signer(settings),
        token=token,
        visitor=_visitor(request, settings),
    )
    if delivery.unsubscribe_redirect_url:
        return RedirectResponse(delivery.unsubscribe_redirect_url, status_code=303)
    body = (
        f"<h1>Unsubscribed</h1><p>{html.escape(delivery.recipient)} will get no more of "
        "this mail.</p>"
    )
    return HTMLResponse(_PAGE.format(title="Unsubscribed", body=body), headers=_NO_STORE)
