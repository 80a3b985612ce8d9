"""Static files users fetch from the server itself: the JavaScript SDK."""
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

router = APIRouter(tags=["sdk"])

SDK_DIR = Path(__file__).resolve().parents[2] / "sdk"


@router.get("/sdk/sophra-sdk.js", include_in_schema=False)
async def javascript_sdk() -> FileResponse:
    return FileResponse(SDK_DIR / "sophra-sdk.js", media_type="application/javascript")
