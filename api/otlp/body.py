"""An OTLP/HTTP export body in, its answer out, in the encoding the client used.

Content-Type application/x-protobuf or application/json (OTLP's JSON mapping: the
proto3 JSON mapping, int64 as strings or numbers, camelCase or snake_case keys);
Content-Encoding gzip or none. The body as sent is capped by BodyLimit (2 MiB); a
gzip body is inflated at most to MAX_INFLATED bytes, so a small zip bomb is refused
after MAX_INFLATED bytes of work, never held whole.
"""
import json
import zlib
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from google.rpc import status_pb2
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (ExportMetricsServiceRequest,
                                                                          ExportMetricsServiceResponse)

from .. import json_body
from ..body_limit import METRICS_BODY_BYTES
from ..errors import ApiError, invalid

PROTOBUF, JSON = "application/x-protobuf", "application/json"
MAX_INFLATED = 4 * METRICS_BODY_BYTES  # 8 MiB: gzip shrinks OTLP JSON about tenfold, protobuf about fourfold

# google.rpc.Code of each HTTP status this route answers (the Status body's `code`).
GRPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 415: 3, 429: 8, 500: 13, 502: 14, 503: 14, 504: 14}

# Exemplars are the one place OTLP JSON departs from proto3 JSON (trace and span ids in
# hex, not base64); nothing here reads them, so they are dropped before parsing.
_POINT_KINDS = ("gauge", "sum", "histogram", "exponentialHistogram", "exponential_histogram", "summary")


def encoding_of(content_type: str | None) -> str:
    """PROTOBUF or JSON, or a 415 for any other type."""
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    if mime in (PROTOBUF, JSON):
        return mime
    raise ApiError(415, "Unsupported media type",
                   f"Content-Type must be {PROTOBUF} or {JSON} (OTLP/HTTP), got {mime or 'none'!r}")


def inflate(data: bytes, content_encoding: str | None) -> bytes:
    """The body without its Content-Encoding (gzip or none), at most MAX_INFLATED bytes."""
    coding = (content_encoding or "identity").strip().lower()
    if coding == "identity":
        return data
    if coding != "gzip":
        raise ApiError(415, "Unsupported media type", f"Content-Encoding must be gzip or absent, got {coding!r}")
    out, left, rest = [], MAX_INFLATED, data
    while rest:  # a gzip stream may hold several members
        d = zlib.decompressobj(wbits=31)
        try:
            chunk = d.decompress(rest, left + 1)
        except zlib.error as exc:
            raise invalid("body", f"is not valid gzip ({exc})") from None
        left -= len(chunk)
        if left < 0 or d.unconsumed_tail:
            raise invalid("body", f"larger than {MAX_INFLATED} bytes once decompressed")
        if not d.eof:
            raise invalid("body", "is not valid gzip (the stream is truncated)")
        out.append(chunk)
        rest = d.unused_data
    return b"".join(out)


def _drop_exemplars(value: Any) -> None:
    for rm in _items(value, "resourceMetrics", "resource_metrics"):
        for sm in _items(rm, "scopeMetrics", "scope_metrics"):
            for m in _items(sm, "metrics"):
                for kind in _POINT_KINDS:
                    data = m.get(kind)
                    for p in _items(data, "dataPoints", "data_points"):
                        p.pop("exemplars", None)


def _items(obj: Any, *keys: str) -> list:
    if type(obj) is not dict:
        return []
    for k in keys:
        v = obj.get(k)
        if type(v) is list:
            return [x for x in v if type(x) is dict]
    return []


def parse(data: bytes, encoding: str) -> ExportMetricsServiceRequest:
    """The export request, or a 400 saying what is wrong with the body."""
    request = ExportMetricsServiceRequest()
    if encoding == PROTOBUF:
        try:
            request.ParseFromString(data)
        except DecodeError as exc:
            raise invalid("body", f"is not a protobuf ExportMetricsServiceRequest ({exc})") from None
        return request
    value = json_body.check(data)  # the api's one JSON check: not JSON, lone surrogates, depth
    if type(value) is not dict:
        raise invalid("body", "must be a JSON object (an ExportMetricsServiceRequest)")
    _drop_exemplars(value)
    try:
        json_format.ParseDict(value, request, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise invalid("body", f"is not an ExportMetricsServiceRequest in OTLP JSON ({exc})") from None
    return request


def decode(data: bytes, content_type: str | None, content_encoding: str | None) -> ExportMetricsServiceRequest:
    encoding = encoding_of(content_type)  # a 415 before any work on the body
    return parse(inflate(data, content_encoding), encoding)


def _encode(message: Message, encoding: str) -> bytes:
    if encoding == PROTOBUF:
        return message.SerializeToString()
    return json_format.MessageToJson(message, indent=None).encode()


def success(rejected: int, message: str, encoding: str) -> bytes:
    """ExportMetricsServiceResponse: partial_success set only when something was rejected
    or there is something to say."""
    response = ExportMetricsServiceResponse()
    if rejected or message:
        response.partial_success.rejected_data_points = rejected
        response.partial_success.error_message = message
    return _encode(response, encoding)


def failure(exc: ApiError, encoding: str) -> bytes:
    """The body of a 4xx/5xx: google.rpc.Status in protobuf; in JSON, the api's error shape
    (success, error, message, field) plus Status's `code`, so it reads as either."""
    code = GRPC_CODES.get(exc.status, 2)  # 2: UNKNOWN
    if encoding == PROTOBUF:
        return status_pb2.Status(code=code, message=exc.body["message"]).SerializeToString()
    return json.dumps({**exc.body, "code": code}).encode()
