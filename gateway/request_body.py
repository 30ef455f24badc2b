"""Reading request bodies: the one body reader (media type, content encoding, a size cap checked
as the body streams in and again as it inflates) and the JSON object parser every handler uses."""

from __future__ import annotations

import json
import math
import re
import zlib

from aiohttp import hdrs, web

from gateway.problems import Problem
from scout_kit.text import text_fault

DEFAULT_MAX_BODY = 64 * 1024
# No body of the API nests deeper than a few levels; this bound is checked before parsing, so
# no nesting reaches the parser's recursion.
MAX_JSON_DEPTH = 32
# A JSON string (possessive, so no input makes it backtrack; an unterminated one runs to the
# end) or a bracket: what the depth scan needs, in one linear pass.
_JSON_STRUCTURE = re.compile(rb'"(?:[^"\\]++|\\.|\\\Z)*+(?:"|\Z)|[\[\]{}]', re.DOTALL)
_GZIP_ENCODINGS = ("gzip", "x-gzip")


def _too_large(detail: str) -> Problem:
    return Problem(413, "Content Too Large", detail, type_="body-too-large")


def _bad_gzip(detail: str) -> Problem:
    return Problem(
        400, "Bad Request", f"Content-Encoding is gzip but {detail}.", type_="invalid-gzip"
    )


def _encoding(request: web.Request, gzip: bool) -> str:
    """The body's content encoding; 415 for the media type or an encoding not taken here."""
    if request.content_type != "application/json":
        raise Problem(
            415,
            "Unsupported Media Type",
            "Send the body as application/json.",
            type_="unsupported-media-type",
        )
    encoding = request.headers.get(hdrs.CONTENT_ENCODING, "identity").strip().lower()
    if encoding != "identity" and not (gzip and encoding in _GZIP_ENCODINGS):
        raise Problem(
            415,
            "Unsupported Media Type",
            "Content-Encoding must be gzip or absent."
            if gzip
            else "This endpoint takes no Content-Encoding.",
            type_="unsupported-content-encoding",
        )
    return encoding


async def read_body(
    request: web.Request, *, max_bytes: int = DEFAULT_MAX_BODY, gzip: bool = False
) -> bytes:
    """The JSON body, inflated if gzip-encoded (only where `gzip` allows it); 413 when over
    `max_bytes` as sent or as inflated (whatever Content-Length says; inflation stops at the
    cap, so a small bomb costs at most that much), 415 for a media type or encoding not taken,
    400 for broken gzip."""
    encoding = _encoding(request, gzip)
    if request.content_length is not None and request.content_length > max_bytes:
        raise _too_large(_sent_limit(max_bytes))
    body = _Body(max_bytes, inflate=encoding != "identity")
    content = request.content
    if content.is_eof():
        # The whole body came with the request (any small post): taken at once, not streamed.
        body.feed(content.read_nowait())
    else:
        async for chunk in content.iter_any():
            body.feed(chunk)
    return body.finish()


def _sent_limit(max_bytes: int) -> str:
    return f"The body must be at most {max_bytes} bytes as sent."


class _Body:
    """A body as it arrives: the cap on what was sent and on what it inflates to."""

    def __init__(self, max_bytes: int, *, inflate: bool) -> None:
        self._max = max_bytes
        self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if inflate else None
        self._received = 0
        self._inflated = 0
        self._parts: list[bytes] = []

    def feed(self, chunk: bytes) -> None:
        self._received += len(chunk)
        if self._received > self._max:
            raise _too_large(_sent_limit(self._max))
        inflater = self._inflater
        if inflater is None:
            self._parts.append(chunk)
            return
        if inflater.eof:
            raise _bad_gzip("data follows the end of the gzip stream")
        try:
            # At most one byte over the cap is inflated: enough to know it is too large.
            out = inflater.decompress(chunk, self._max + 1 - self._inflated)
        except zlib.error:
            raise _bad_gzip("the body is not valid gzip") from None
        self._inflated += len(out)
        if self._inflated > self._max or inflater.unconsumed_tail:
            raise _too_large(f"The body must be at most {self._max} bytes uncompressed.")
        self._parts.append(out)

    def finish(self) -> bytes:
        inflater = self._inflater
        if inflater is not None and (not inflater.eof or inflater.unused_data):
            raise _bad_gzip("the gzip stream is truncated or followed by other data")
        parts = self._parts
        return parts[0] if len(parts) == 1 else b"".join(parts)


async def read_json_object(
    request: web.Request, max_bytes: int = DEFAULT_MAX_BODY
) -> dict[str, object]:
    """The body as a JSON object (read_body, no content encoding), 400 when not JSON or not an
    object. Only the metrics endpoint takes gzip bodies."""
    return parse_json_object(await read_body(request, max_bytes=max_bytes))


def _invalid_json(detail: str) -> Problem:
    return Problem(400, "Bad Request", detail, type_="invalid-json")


def _check_depth(raw: bytes) -> None:
    depth = 0
    for match in _JSON_STRUCTURE.finditer(raw):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise _invalid_json(f"The body is nested more than {MAX_JSON_DEPTH} levels deep.")
        elif token in (b"]", b"}"):
            depth -= 1


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:20]} is outside what a double can hold")
    return value


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _check_text(value: object, pointer: str = "") -> None:
    """Every string and key is text the services can store (scout_kit.text)."""
    if isinstance(value, str):
        fault = text_fault(value)
        if fault is not None:
            raise _invalid_json(f"The string at {pointer or '/'} holds {fault}.")
    elif isinstance(value, dict):
        for key, item in value.items():
            fault = text_fault(key)
            where = f"{pointer}/{_pointer_token(key) if fault is None else '(key)'}"
            if fault is not None:
                raise _invalid_json(f"A key at {where} holds {fault}.")
            _check_text(item, where)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_text(item, f"{pointer}/{index}")


def _pointer_token(key: str) -> str:
    key = key.replace("~", "~0").replace("/", "~1")
    return key if len(key) <= 60 else key[:57] + "..."


def parse_json_object(raw: bytes, *, non_finite: bool = False) -> dict[str, object]:
    """A JSON object whose depth, numbers and text every handler can take: 400 otherwise,
    naming what was wrong (never a quote of the body). `non_finite`: NaN, Infinity and numbers
    past a double are let through, for a caller that refuses them with a sharper answer."""
    _check_depth(raw)
    try:
        if non_finite:
            value = json.loads(raw)
        else:
            value = json.loads(raw, parse_float=_finite, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _invalid_json(f"The body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise _invalid_json("The body must be a JSON object.")
    _check_text(value)
    return value
