"""One JSON error shape for every failure: {"success": false, "error", "message", ["field"]}.

`error` is a short stable text, `message` says what to do, `field` names the offending
input as the client spelled it (e.g. "metrics.hallucinationRate").
"""
import json

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException


class ApiError(Exception):
    def __init__(self, status: int, error: str, message: str, *, field: str | None = None,
                 headers: dict[str, str] | None = None, **extra):
        self.status, self.headers = status, headers
        self.body = {"success": False, "error": error, "message": message, **extra}
        if field is not None:
            self.body["field"] = field


INTERNAL = ApiError(500, "Internal server error", "The server failed to answer this request; retry later")


def invalid(field: str, message: str) -> ApiError:
    return ApiError(400, "Invalid request", f"{field}: {message}", field=field)


async def send_error(send, exc: ApiError) -> None:
    """Answer `exc` from ASGI middleware (outside the routes' exception handlers)."""
    body = json.dumps(exc.body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               *((k.lower().encode(), v.encode()) for k, v in (exc.headers or {}).items())]
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _field(loc: tuple) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def _describe(err: dict) -> ApiError:
    if err["type"] == "json_invalid":
        return invalid("body", "is not valid JSON")
    field = _field(tuple(err["loc"]))
    if err["type"] == "missing":
        return invalid(field, "is required")
    return invalid(field, err["msg"][0].lower() + err["msg"][1:])


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError):
        return JSONResponse(exc.body, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError):
        e = _describe(exc.errors()[0])
        return JSONResponse(e.body, status_code=e.status)

    @app.exception_handler(Exception)  # anything unhandled: logged by Starlette, answered in the one shape
    async def _internal(_: Request, exc: Exception):
        return JSONResponse(INTERNAL.body, status_code=INTERNAL.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException):
        e = ApiError(exc.status_code, "Not found" if exc.status_code == 404 else str(exc.detail), str(exc.detail))
        return JSONResponse(e.body, status_code=e.status, headers=getattr(exc, "headers", None))


def truthful_openapi(app: FastAPI):
    """FastAPI documents a 422 for every validated route; this api answers 400 in the
    shape above instead, so the generated spec says that. Every write documents the 403
    a read-only key gets (api/auth.py)."""
    generate = app.openapi

    def openapi():
        from .auth import READ_POSTS  # auth imports this module

        if app.openapi_schema is None:
            spec = generate()
            for path, item in spec["paths"].items():
                for method, op in item.items():
                    if method != "get" and path != "/api/keys" and path not in READ_POSTS:  # keys: its own 403s
                        op.setdefault("responses", {}).setdefault("403", {
                            "description": "Forbidden: a read-only key",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}},
                        })
                    if op.get("responses", {}).pop("422", None) is not None:
                        op["responses"].setdefault("400", {
                            "description": "Invalid request",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}},
                        })
            for name in ("HTTPValidationError", "ValidationError"):
                spec.get("components", {}).get("schemas", {}).pop(name, None)
        return app.openapi_schema
    return openapi
