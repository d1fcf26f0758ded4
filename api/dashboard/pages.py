"""The dashboard's pages and files: one page shell for every dashboard path, the scripts
and styles under /ui/static, and plotly.js under /ui/vendor (no CDN: the dashboard works
on a lab network with no way out).

plotly.js is its "cartesian" partial bundle (scatter, heatmap, histogram and the other
2-D traces: all the dashboard draws), as npm publishes it
(`plotly.js-cartesian-dist-min`), committed in static/vendor with its licence: 1.5 MB
against the full bundle's 4.8 MB, which took a cold browser 3.6 s to fetch and parse
before the first chart (bench/dashboard.py).

The shell holds no data: its scripts draw each page from /v1 with the browser's session,
so what a page shows is exactly what the API answers that user.
"""

from __future__ import annotations

import gzip
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"
PLOTLY_VERSION = "4.1.1"
PLOTLY_FILE = STATIC_DIR / "vendor" / f"plotly-cartesian-{PLOTLY_VERSION}.min.js"
PLOTLY_PATH = f"/ui/vendor/{PLOTLY_FILE.name}"

# The dashboard's own paths: each answers the same shell, whose router draws the page.
PAGE_PATHS = (
    "/experiments",
    "/runs/{run_id}",
    "/sweeps",
    "/sweeps/{sweep_id}",
    "/probes",
    "/probes/{probe_id}",
    "/compare",
    "/submit",
    "/workers",
    "/login",
)

router = APIRouter(include_in_schema=False)


@cache
def _shell() -> bytes:
    """index.html with the versioned Plotly path filled in."""
    html = (STATIC_DIR / "index.html").read_text()
    return html.replace("{{PLOTLY_PATH}}", PLOTLY_PATH).encode()


@cache
def _plotly_gzipped() -> bytes:
    return gzip.compress(PLOTLY_FILE.read_bytes(), compresslevel=9)


def _page(_: Request) -> Response:
    # no-store: a shell is cheap, and a stale one after an upgrade would load old scripts.
    return Response(_shell(), media_type="text/html", headers={"Cache-Control": "no-store"})


@router.get("/")
def dashboard_home(request: Request) -> Response:
    return _page(request)


for _path in PAGE_PATHS:
    router.add_api_route(_path, _page, methods=["GET"])


@router.get(PLOTLY_PATH)
def plotly_bundle(request: Request) -> Response:
    """plotly.js, gzipped once per process; its path names its version, so it is cached
    for good."""
    headers = {"Cache-Control": "public, max-age=31536000, immutable", "Vary": "Accept-Encoding"}
    body = _plotly_gzipped()
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
    else:
        body = gzip.decompress(body)
    return Response(body, media_type="text/javascript", headers=headers)


@router.get("/favicon.ico")
def favicon() -> FileResponse:
    return FileResponse(STATIC_DIR / "favicon.svg", media_type="image/svg+xml")


class RevalidatedFiles(StaticFiles):
    """The dashboard's scripts and styles, each checked with the server on every load (an
    ETag answers 304 when unchanged), so that an upgrade's scripts replace the old ones."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        return response


def install_dashboard(app: FastAPI) -> None:
    """Serve the dashboard from `app`: its pages, its scripts and styles, and Plotly."""
    app.include_router(router)
    app.mount("/ui/static", RevalidatedFiles(directory=STATIC_DIR), name="dashboard-static")
