"""The playground: GET / serves server/static/index.html, /static/ its script and stylesheet.

Receives nothing but the request; hands on the page, which talks to this server's own API only
(/models, /solve and /generate streamed, /metrics). Its Content-Security-Policy allows nothing
from another origin: no CDN, no external fonts. Knows nothing of models or batching.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).with_name("static")
CSP = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"

router = APIRouter()


@router.get("/", include_in_schema=False)
async def playground() -> FileResponse:
    return FileResponse(
        STATIC / "index.html", media_type="text/html", headers={"Content-Security-Policy": CSP}
    )


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
