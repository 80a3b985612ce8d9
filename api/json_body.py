"""Every JSON request body is checked here, once, before any route reads it.

Two things no model can refuse reliably are refused with a 400 naming the field:

- a string (a value or an object's key) holding a lone UTF-16 surrogate ("\\ud800"):
  JSON allows the escape, but it is not Unicode, so it could not be encoded to Avro or
  answered back in UTF-8;
- nesting deeper than MAX_DEPTH objects and arrays (the body itself is level 1): deeper
  values could be acknowledged yet never be answered back (serializers stop at a
  recursion limit), and arbitrarily deep ones exhaust the parser's stack.

A body that is not JSON at all is refused here too, so every route answers it alike.
The body is buffered (BodyLimit, outside this, caps it), checked, then handed on whole.
Which bodies count as JSON follows FastAPI: no Content-Type, application/json or
application/*+json.
"""
import asyncio
import json
import re
from typing import Any

from .errors import ApiError, invalid, send_error

MAX_DEPTH = 32
THREAD_ABOVE = 64 * 1024  # bytes; larger bodies are checked on a thread, off the event loop
_SKIP = frozenset({"GET", "HEAD", "OPTIONS"})


def _printable(text: str) -> str:
    """`text` safe to answer in UTF-8: lone surrogates as \\udXXX escapes."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _valid_unicode(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _field(path: tuple) -> str:
    """The client's spelling of a path: metadata.note, points[3].metric; `body` for the root."""
    out = ""
    while path:
        path, part = path
        out = (f"[{part}]" if isinstance(part, int) else ("." + _printable(part))) + out
    return out.lstrip(".") or "body"


def _walk(value: Any, path: tuple, depth: int) -> None:
    # `path` is a linked (parent, part) pair, rendered only when something is wrong.
    kind = type(value)
    if kind is str:
        if not _valid_unicode(value):
            raise invalid(_field(path), "holds a lone UTF-16 surrogate (\\ud800-\\udfff), which is not valid Unicode")
    elif kind is dict or kind is list:
        if depth > MAX_DEPTH:
            raise invalid(_field(path), f"is nested deeper than {MAX_DEPTH} levels of objects and arrays")
        if kind is dict:
            for key, item in value.items():
                if not _valid_unicode(key):
                    raise invalid(_field((path, key)), "this key holds a lone UTF-16 surrogate (\\ud800-\\udfff), "
                                                       "which is not valid Unicode")
                _walk(item, (path, key), depth + 1)
        else:
            for i, item in enumerate(value):
                _walk(item, (path, i), depth + 1)


def _depth(value: Any, path: tuple, depth: int) -> None:
    """_walk for depth alone: only containers are visited."""
    if depth > MAX_DEPTH:
        raise invalid(_field(path), f"is nested deeper than {MAX_DEPTH} levels of objects and arrays")
    for key, item in (value.items() if type(value) is dict else enumerate(value)):
        kind = type(item)
        if kind is dict or kind is list:
            _depth(item, (path, key), depth + 1)


# In UTF-8 JSON a lone surrogate can only come from a \uD800-\uDFFF escape or from the
# bytes ED A0-BF (which Python's decoder lets through). Without either, the strings
# need no look; with one (it may be a valid pair, or an escaped backslash), they get it.
_MAYBE_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")


def check(body: bytes) -> Any:
    """The parsed body, or the ApiError (400) for the first problem of a JSON body.
    OTLP ingest calls it on the JSON it decompressed (api/otlp/body.py)."""
    try:
        value = json.loads(body)
    except RecursionError:  # deeper than the parser's stack: far beyond MAX_DEPTH
        raise invalid("body", f"is nested deeper than {MAX_DEPTH} levels of objects and arrays") from None
    except ValueError:  # JSONDecodeError, or bytes that are not UTF-8/16/32
        raise invalid("body", "is not valid JSON") from None
    # (`in` first: a byte search is ~100x faster than the regex over a 2 MiB batch)
    if json.detect_encoding(body) != "utf-8" or (
            (b"\\u" in body or b"\xed" in body) and _MAYBE_SURROGATE.search(body)):
        _walk(value, (), 1)
    elif type(value) is dict or type(value) is list:
        _depth(value, (), 1)  # a 10,000-point metrics batch: about half the time of _walk
    return value


def stored(text: str, levels: int = MAX_DEPTH - 1):
    """A JSON object the api stored (metadata, an application's config), ready to answer.

    A body's object fields sit at level 2, so what was accepted since this limit has at
    most MAX_DEPTH - 1 levels. Rows stored before it may be deeper: they are answered
    cut at `levels`, the objects and arrays below it as null, rather than not at all."""
    value = json.loads(text)
    if text.count("{") + text.count("[") <= levels:  # cannot be deeper (brackets in strings only add)
        return value
    return _cut(value, levels)


def _cut(value: Any, levels: int):
    if type(value) is dict:
        return {k: _cut(v, levels - 1) for k, v in value.items()} if levels > 0 else None
    if type(value) is list:
        return [_cut(v, levels - 1) for v in value] if levels > 0 else None
    return value


def is_json(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name == b"content-type":
            mime = value.split(b";", 1)[0].strip().lower()
            return mime == b"application/json" or (mime.startswith(b"application/") and mime.endswith(b"+json"))
    return True  # FastAPI parses a body without Content-Type as JSON


# Routes that decode their own bodies (OTLP: gzip, then protobuf or JSON) and run `check`
# on the JSON themselves, once it is decompressed.
OWN_DECODING = ("/otlp/",)


class JsonCheck:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if (scope["type"] != "http" or scope["method"] in _SKIP or not is_json(scope["headers"])
                or scope["path"].startswith(OWN_DECODING)):
            return await self.app(scope, receive, send)
        chunks, more = [], True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if body:
            try:
                if len(body) > THREAD_ABOVE:
                    await asyncio.to_thread(check, body)
                else:
                    check(body)
            except ApiError as exc:
                return await send_error(send, exc)
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)
