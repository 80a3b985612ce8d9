"""The web dashboard (docs/dashboard.md), served by the api itself: plain ES modules
from dashboard/src as they are, and uPlot from the npm install in dashboard/node_modules
(`make dashboard`). Nothing is loaded from elsewhere at run time, and the Content-Security-Policy
says so to the browser."""
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, PlainTextResponse, RedirectResponse, Response

router = APIRouter(tags=["dashboard"])

ROOT = Path(__file__).resolve().parents[2] / "dashboard"  # beside the code (the image installs it in place)
SRC = ROOT / "src"
VENDOR = {"uPlot.esm.js": ROOT / "node_modules" / "uplot" / "dist" / "uPlot.esm.js",
          "uPlot.min.css": ROOT / "node_modules" / "uplot" / "dist" / "uPlot.min.css"}
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png"}
# Scripts and styles from this origin only; uPlot sets element styles through the CSSOM,
# which style-src does not restrict, so no 'unsafe-inline' is needed.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
HEADERS = {"Cache-Control": "no-cache", "Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"}


def _file(path: Path) -> Response:
    return FileResponse(path, media_type=TYPES.get(path.suffix, "application/octet-stream"), headers=HEADERS)


def _not_found() -> Response:
    return PlainTextResponse("Not found", status_code=404, headers=HEADERS)


@router.get("/", include_in_schema=False)
async def root() -> Response:
    return RedirectResponse("/dashboard/", status_code=307)


@router.get("/dashboard", include_in_schema=False)
async def dashboard_bare() -> Response:
    return RedirectResponse("/dashboard/", status_code=307)  # relative module paths need the slash


@router.get("/dashboard/", include_in_schema=False)
async def dashboard_index() -> Response:
    return _file(SRC / "index.html")


@router.get("/dashboard/vendor/{name}", include_in_schema=False)
async def dashboard_vendor(name: str) -> Response:
    path = VENDOR.get(name)
    if path is None:
        return _not_found()
    if not path.is_file():
        return PlainTextResponse("The dashboard's packages are not installed: run `make dashboard`",
                                 status_code=503, headers=HEADERS)
    return _file(path)


@router.get("/dashboard/{name}", include_in_schema=False)
async def dashboard_file(name: str) -> Response:
    # Only a plain file name directly inside src: no sub-folders, so nothing outside it
    # can be named (the path parameter never holds a "/", and "." or ".." are refused).
    path = SRC / name
    if name.startswith(".") or path.suffix not in TYPES or not path.is_file() or path.parent != SRC:
        return _not_found()
    return _file(path)
