"""Static files served by the api itself: the JavaScript SDK and the onboarding page."""
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

router = APIRouter(tags=["static"])

SDK_DIR = Path(__file__).resolve().parents[2] / "sdk"
PAGES_DIR = Path(__file__).resolve().parents[1] / "pages"


@router.get("/sdk/sophra-sdk.js", include_in_schema=False)
async def javascript_sdk() -> FileResponse:
    return FileResponse(SDK_DIR / "sophra-sdk.js", media_type="application/javascript")


@router.get("/onboarding.html", include_in_schema=False)
async def onboarding_page() -> FileResponse:
    return FileResponse(PAGES_DIR / "onboarding.html", media_type="text/html")
