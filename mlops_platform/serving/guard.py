"""ASGI middleware: every request bounded before the app sees it, and request metrics.

Plain ASGI rather than FastAPI middleware: it costs a few microseconds per request, and it can
answer while a body streams in. Limits, each answered in the protocol's error shape (OIP routes
`{"error": ...}`, others `{"error_code", "message"}`):
- headers over `max_header_bytes` -> 431; an `X-Request-ID` that is too long or not printable
  ASCII -> 400; a Content-Length that is not an integer -> 400;
- a body over `max_body_bytes` -> 413, declared or not (chunked): counted in the `receive`
  wrapper, which answers 413 itself, because Starlette would answer 500 on the error it raises;
- more than `max_concurrent` requests in progress -> 503 with `Retry-After`; a client over its
  rate -> 429 with `Retry-After` (optional, per client address); health and metrics are exempt;
- a request still unanswered after `timeout_seconds` (a slow body included) -> 504.

`routes` maps (method, path) to plain ASGI handlers served straight from here, after the same
checks and with the same metrics: the hot route (`POST /invocations`) skips FastAPI's five
middleware layers, routing and dependency solving, which cost more than the scoring itself.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from dataclasses import dataclass

from mlops_platform.serving.metrics import RequestMetrics, ServingMetrics

#: Probes and scrapes: never refused for load, so an overloaded replica still reports itself.
EXEMPT = frozenset({"/ping", "/health", "/metrics", "/v2/health/live", "/v2/health/ready"})


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 1_000_000
    max_header_bytes: int = 16_384
    max_request_id_chars: int = 128
    max_concurrent: int = 256
    timeout_seconds: float = 30.0
    #: requests per second per client address; 0 disables the rate limit
    rate_per_second: float = 0.0
    rate_burst: int = 20


class _Refused(Exception):
    def __init__(self, status: int, code: str, message: str, retry_after: int | None = None):
        self.status, self.code, self.message, self.retry_after = status, code, message, retry_after


class RateLimiter:
    """A token bucket per client address (bounded: idle buckets are forgotten)."""

    def __init__(self, rate: float, burst: int, max_clients: int = 10_000) -> None:
        self.rate, self.burst, self.max_clients = rate, burst, max_clients
        self._buckets: dict[str, tuple[float, float]] = {}

    def wait_seconds(self, client: str, now: float) -> float:
        """0 if the request may go now (and takes a token), else the seconds until it may."""
        tokens, last = self._buckets.get(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            if len(self._buckets) >= self.max_clients and client not in self._buckets:
                full = now - self.burst / self.rate  # buckets refilled by now are forgettable
                self._buckets = {c: v for c, v in self._buckets.items() if v[1] > full}
            self._buckets[client] = (tokens - 1.0, now)
            return 0.0
        self._buckets[client] = (tokens, now)
        return (1.0 - tokens) / self.rate


def _body(path: str, code: str, message: str) -> bytes:
    if path.startswith("/v2"):
        return json.dumps({"error": message}).encode()
    return json.dumps({"error_code": code, "message": message}).encode()


async def _answer(send, path: str, refused: _Refused) -> None:
    payload = _body(path, refused.code, refused.message)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
    if refused.retry_after is not None:
        headers.append((b"retry-after", str(refused.retry_after).encode()))
    await send({"type": "http.response.start", "status": refused.status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


class Guard:
    def __init__(
        self, app, metrics: ServingMetrics, limits: Limits, routes: dict | None = None
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.limits = limits
        self.routes = routes or {}
        self.active = 0
        self.recorded = RequestMetrics(metrics)
        metrics.in_flight.set_function(lambda: self.active)  # read at scrape time
        self.rate = (
            RateLimiter(limits.rate_per_second, limits.rate_burst)
            if limits.rate_per_second > 0
            else None
        )

    def _admit(self, scope) -> int | None:
        """Check headers and load; returns the declared body length. Raises _Refused."""
        limits = self.limits
        size, length = 0, None
        for name, value in scope["headers"]:
            size += len(name) + len(value)
            if name == b"content-length":
                if not value.isdigit():
                    raise _Refused(400, "BAD_REQUEST", "Content-Length must be an integer")
                length = int(value)
            elif name == b"x-request-id" and (
                len(value) > limits.max_request_id_chars
                or not value.isascii()
                or not value.decode().isprintable()
            ):
                raise _Refused(
                    400,
                    "BAD_REQUEST",
                    f"X-Request-ID must be 1-{limits.max_request_id_chars} printable ASCII "
                    "characters",
                )
        if size > limits.max_header_bytes:
            raise _Refused(
                431, "HEADERS_TOO_LARGE", f"headers over the {limits.max_header_bytes} byte limit"
            )
        if length is not None and length > limits.max_body_bytes:
            raise _Refused(413, "REQUEST_TOO_LARGE", self._too_large)
        if scope["path"] in EXEMPT:
            return length
        if self.active >= limits.max_concurrent:
            raise _Refused(
                503,
                "SERVICE_UNAVAILABLE",
                f"over {limits.max_concurrent} requests in progress; retry shortly",
                retry_after=1,
            )
        if self.rate is not None:
            client = (scope.get("client") or ("?", 0))[0]
            wait = self.rate.wait_seconds(client, time.monotonic())
            if wait > 0:
                raise _Refused(
                    429,
                    "RATE_LIMITED",
                    f"over {limits.rate_per_second:g} requests per second from {client}",
                    retry_after=max(1, math.ceil(wait)),
                )
        return length

    @property
    def _too_large(self) -> str:
        return f"request body over the {self.limits.max_body_bytes} byte limit"

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = {"code": 500, "sent": False}
        path = scope["path"]

        async def tracked_send(message):
            if message["type"] == "http.response.start":
                if status["sent"]:
                    return  # we answered already (413/504): the app's late reply is dropped
                status["code"], status["sent"] = message["status"], True
            elif status.get("ours"):
                return
            await send(message)

        async def refuse(refused: _Refused) -> None:
            if not status["sent"]:
                await _answer(tracked_send, path, refused)
                status["ours"] = True

        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limits.max_body_bytes:
                    await refuse(_Refused(413, "REQUEST_TOO_LARGE", self._too_large))
                    raise _Refused(413, "REQUEST_TOO_LARGE", self._too_large)
            return message

        counted = False
        route_path = None
        try:
            self._admit(scope)
            self.active += 1
            counted = True
            handler = self.routes.get((scope["method"], path))
            if handler is not None:
                route_path = path
            else:
                handler = self.app
            async with asyncio.timeout(self.limits.timeout_seconds):
                await handler(scope, limited_receive, tracked_send)
        except _Refused as refused:
            await refuse(refused)
        except TimeoutError:
            await refuse(
                _Refused(
                    504,
                    "TIMEOUT",
                    f"request not answered within {self.limits.timeout_seconds:g} s",
                )
            )
        finally:
            if counted:
                self.active -= 1
            if route_path is None:
                route_path = getattr(scope.get("route"), "path", None) or "unmatched"
            self.recorded.record(
                route_path, scope.get("method", ""), status["code"], time.perf_counter() - started
            )
