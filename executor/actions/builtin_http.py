"""The `http` action: one HTTP request, with an idempotency key and a retry verdict."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final
from urllib.parse import unquote_plus

import httpx
import orjson

from executor.actions.arguments import invalid, optional_str, optional_str_map, required_str
from executor.actions.context import ActionContext
from executor.actions.errors import DestinationRefused, StepFailed

METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
MAX_BODY_BYTES: Final = 1024 * 1024
RETRYABLE_CLIENT_STATUSES: Final = frozenset({408, 429})  # the server may accept a later retry
# a Retry-After beyond this is read as this; the retry policy's max_backoff caps it further
MAX_RETRY_AFTER: Final = timedelta(days=365)
_SNIPPET_CHARS: Final = 200
_UNSET: Final = object()


@dataclass(frozen=True)
class HttpRequest:
    """The validated `with` map of an `http` step."""

    method: str
    url: str  # as written, for messages
    target: httpx.URL  # what is sent: `url` with `params` merged into its query
    headers: Mapping[str, str]
    json: Any  # _UNSET when absent, so an explicit JSON null can still be sent
    body: str | None
    expect: frozenset[int] | None  # None: any 2xx
    timeout: float | None


def parse_request(args: Mapping[str, Any]) -> HttpRequest:
    """Validate `with`; a bad value raises a non-retryable StepFailed naming the field."""
    method = (optional_str(args, "method") or "GET").upper()
    if method not in METHODS:
        raise invalid("method", f"must be one of {', '.join(sorted(METHODS))}, got {method!r}")
    url = required_str(args, "url")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise invalid("url", f"{url!r} is not a URL: {exc}") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise invalid("url", f"{url!r} must be an absolute http or https URL")
    if "json" in args and args.get("body") is not None:
        raise invalid("body", "cannot be given together with json")
    params = optional_str_map(args, "params")
    return HttpRequest(
        method=method,
        url=url,
        target=merge_query(parsed, params),
        headers=optional_str_map(args, "headers"),
        json=args.get("json", _UNSET),
        body=optional_str(args, "body"),
        expect=_parse_expect(args.get("expect")),
        timeout=_parse_timeout(args.get("timeout")),
    )


def merge_query(url: httpx.URL, params: Mapping[str, str]) -> httpx.URL:
    """`url` with `params` added to its query; a key in `params` replaces that key's pairs.

    The URL's own pairs keep their bytes as written (a signed URL stays valid); only the
    added pairs are encoded, the way httpx encodes `params`.
    """
    if not params:
        return url
    kept = [
        pair
        for pair in url.query.decode("ascii").split("&")
        if pair and unquote_plus(pair.split("=", 1)[0]) not in params
    ]
    return url.copy_with(query="&".join([*kept, str(httpx.QueryParams(params))]).encode("ascii"))


def _parse_expect(value: object) -> frozenset[int] | None:
    if value is None:
        return None
    codes = value if isinstance(value, list) else [value]
    if not codes or not all(
        isinstance(c, int) and not isinstance(c, bool) and 100 <= c <= 599 for c in codes
    ):
        raise invalid("expect", f"must be a status code or a list of them, got {value!r}")
    return frozenset(codes)


def _parse_timeout(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise invalid("timeout", f"must be a positive number of seconds, got {value!r}")
    return float(value)


def status_failure(
    request: HttpRequest, response: httpx.Response, body: bytes
) -> StepFailed | None:
    """Decide from the status alone whether the attempt failed, and if so whether to retry."""
    status = response.status_code
    expected = status in request.expect if request.expect else 200 <= status < 300
    if expected:
        return None
    snippet = body[:_SNIPPET_CHARS].decode(errors="replace").replace("\x00", "\\u0000")
    retryable = status >= 500 or status in RETRYABLE_CLIENT_STATUSES
    return StepFailed(
        f"{request.method} {request.url} returned {status}: {snippet}",
        retryable=retryable,
        retry_after=retry_after(response.headers.get("retry-after")) if retryable else None,
    )


def retry_after(value: str | None) -> timedelta | None:
    """The delay-seconds form of `Retry-After`, at most MAX_RETRY_AFTER; None for anything else.

    An HTTP date would need the clock, and is rare. Any number of digits is read without
    overflow: the digits are only converted once they are known to be short enough.
    """
    if value is None:
        return None
    digits = value.strip()
    if not digits.isascii() or not digits.isdigit():
        return None
    limit = int(MAX_RETRY_AFTER.total_seconds())
    if len(digits) > len(str(limit)):
        return MAX_RETRY_AFTER
    return timedelta(seconds=min(int(digits), limit))


def decode_body(response: httpx.Response, body: bytes) -> Any:
    """Parse JSON when the content type says so, else return text.

    A body that cannot be read as what it claims to be fails the step without retry: the same
    request would get the same bytes back.
    """
    media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type == "application/json" or media_type.endswith("+json"):
        if not body.strip():
            return None
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise StepFailed(f"response claims JSON but is not: {exc}", retryable=False) from exc
    encoding = response.encoding or "utf-8"
    try:
        return body.decode(encoding)
    except UnicodeDecodeError as exc:
        raise StepFailed(
            f"response body is not valid {encoding}: byte {exc.start} cannot be decoded",
            retryable=False,
        ) from None


async def _read_capped(response: httpx.Response) -> tuple[bytes, bool]:
    """Read at most MAX_BODY_BYTES; the flag says the body was longer."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return b"".join(chunks)[:MAX_BODY_BYTES], True
    return b"".join(chunks), False


def _encode_content(request: HttpRequest, headers: httpx.Headers) -> bytes | str | None:
    if request.json is _UNSET:
        return request.body
    try:
        content = orjson.dumps(request.json)
    except orjson.JSONEncodeError as exc:
        raise invalid("json", f"cannot be encoded as JSON: {exc}") from exc
    headers.setdefault("Content-Type", "application/json")
    return content


async def _exchange(request: HttpRequest, ctx: ActionContext) -> dict[str, Any]:
    headers = httpx.Headers(request.headers)
    headers["Idempotency-Key"] = ctx.idempotency_key  # lets the server dedupe our retries
    if "traceparent" not in headers:  # the attempt's span, unless the step sends its own
        headers.update(ctx.trace)
    content = _encode_content(request, headers)
    async with ctx.http.stream(
        request.method,
        request.target,
        headers=headers,
        content=content,
        timeout=httpx.USE_CLIENT_DEFAULT if request.timeout is None else request.timeout,
    ) as response:
        body, oversized = await _read_capped(response)
    failure = status_failure(request, response, body)
    if failure is not None:
        raise failure
    if oversized:
        raise StepFailed(
            f"{request.method} {request.url} returned a body over the "
            f"{MAX_BODY_BYTES} byte limit for step output",
            retryable=False,
        )
    return {
        "status": response.status_code,
        "headers": {key.lower(): value for key, value in response.headers.items()},
        "body": decode_body(response, body),
    }


async def http(args: Mapping[str, Any], ctx: ActionContext) -> dict[str, Any]:
    """Send the request; transport errors, 5xx, 408 and 429 are retryable, other failures not."""
    request = parse_request(args)
    try:
        async with asyncio.timeout(request.timeout):
            return await _exchange(request, ctx)
    except DestinationRefused as exc:
        raise DestinationRefused(f"{request.method} {request.url}: {exc.message}") from None
    except (httpx.TransportError, TimeoutError) as exc:
        raise StepFailed(
            f"{request.method} {request.url} failed: {type(exc).__name__}: {exc}", retryable=True
        ) from exc
    except httpx.HTTPError as exc:
        raise StepFailed(
            f"{request.method} {request.url} failed: {type(exc).__name__}: {exc}", retryable=False
        ) from exc
