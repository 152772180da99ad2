"""The async Binance REST client (aiohttp): signing, budgets, errors, retries.

Errors, by what the caller must do:
- `BinanceApiError` (4xx with a Binance code): the request was refused; fix it, do not resend as is.
  Order rejections are `InvalidOrderError` / `InsufficientFunds` (subclasses carry the code).
- `RateLimited`: 429 (wait `retry_after_ms`) or 418 (banned: stop; the operator must look).
- `UnknownOutcome`: a write got a 5xx, -1006/-1007, or no answer (timeout, connection lost). The
  order may or may not exist: resolve by querying its client order id, NEVER by resending blindly.
- `TemporaryError`: a read failed transiently; `with_retries` retries reads with backoff.

Time for `timestamp` comes from the Clock plus the measured offset to the server's clock.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import aiohttp
import orjson

from kestrel.binance.http.breaker import CircuitBreaker
from kestrel.binance.http.endpoints import Endpoint
from kestrel.binance.http.ratelimit import RateLimitTracker
from kestrel.binance.http.shared_budget import SharedBudget
from kestrel.binance.http.signing import encode_params, signed_query
from kestrel.core.clock import Clock
from kestrel.core.errors import ConfigurationError, InsufficientFunds, InvalidOrderError, KestrelError, TemporaryError

_INSUFFICIENT = {-2018, -2019}
_UNKNOWN_CODES = {-1006, -1007}
T = TypeVar("T")


class BinanceApiError(KestrelError):
    def __init__(self, code: int, message: str, http_status: int) -> None:
        super().__init__(f"Binance error {code}: {message} (HTTP {http_status})")
        self.code = code
        self.http_status = http_status


class UnknownOutcome(TemporaryError):
    """A write's result is unknown: query by client order id before doing anything else."""


class BinanceHttpClient:
    def __init__(
        self,
        base_url: str,
        clock: Clock,
        api_key: str | None = None,
        api_secret: str | None = None,
        recv_window_ms: int = 5000,
        timeout_ms: int = 10_000,
        limits: RateLimitTracker | None = None,
        breaker: CircuitBreaker | None = None,
        shared: SharedBudget | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.clock = clock
        self._api_key = api_key
        self._api_secret = api_secret
        self.recv_window_ms = recv_window_ms
        self.timeout = aiohttp.ClientTimeout(total=timeout_ms / 1000)
        self.limits = limits or RateLimitTracker()
        self.breaker = breaker or CircuitBreaker()
        self.shared = shared  # the budget kept in Redis with the other processes on this key, if any
        self.server_offset_ms = 0  # server − local, measured by `sync_time`
        self._session: aiohttp.ClientSession | None = None
        # (clock ns, request) when each request's headers were written to the socket: a bounded,
        # always-on record for latency measurement (tick-to-order), filled by aiohttp's request tracing
        self.sent: deque[tuple[int, aiohttp.TraceRequestHeadersSentParams]] = deque(maxlen=4096)

    async def __aenter__(self) -> BinanceHttpClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self.shared is not None:
            await self.shared.close()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            trace = aiohttp.TraceConfig()
            trace.on_request_headers_sent.append(self._headers_sent)
            self._session = aiohttp.ClientSession(timeout=self.timeout, trace_configs=[trace])
        return self._session

    async def _headers_sent(
        self, _session: aiohttp.ClientSession, _context: object, params: aiohttp.TraceRequestHeadersSentParams
    ) -> None:
        self.sent.append((self.clock.timestamp_ns(), params))

    async def sync_time(self, endpoint: Endpoint) -> int:
        """Measure the server clock offset (ms) with one round trip; midpoint estimate."""
        sent = self.clock.timestamp_ms()
        body = await self.call(endpoint)
        received = self.clock.timestamp_ms()
        self.server_offset_ms = int(body["serverTime"]) - (sent + received) // 2
        return self.server_offset_ms

    async def call(
        self, endpoint: Endpoint, params: Mapping[str, object] | None = None, weight: int | None = None
    ) -> Any:
        """Send one request; returns the decoded JSON body."""
        cost = endpoint.weight if weight is None else weight
        now_ns = await self._reserve(cost, endpoint.orders, endpoint.is_write)
        headers: dict[str, str] = {}
        query = encode_params(params or {})
        if endpoint.security != "NONE":
            if not self._api_key:
                raise ConfigurationError(f"{endpoint.path} needs an API key (venue.api_key)")
            headers["X-MBX-APIKEY"] = self._api_key
        if endpoint.signed:
            if not self._api_secret:
                raise ConfigurationError(f"{endpoint.path} needs an API secret (venue.api_secret)")
            timestamp = self.clock.timestamp_ms() + self.server_offset_ms
            query = signed_query(params or {}, self._api_secret, timestamp, self.recv_window_ms)
        url = f"{self.base_url}{endpoint.path}" + (f"?{query}" if query else "")
        try:
            async with self._http().request(endpoint.method, url, headers=headers) as response:
                raw = await response.read()
                status = response.status
                response_headers = {k: v for k, v in response.headers.items()}
        except (TimeoutError, aiohttp.ClientError) as exc:
            self._failed(endpoint)
            kind = UnknownOutcome if endpoint.is_write else TemporaryError
            raise kind(f"{endpoint.method} {endpoint.path}: no answer ({exc.__class__.__name__})") from exc
        now_ns = self.clock.timestamp_ns()
        self.limits.observe_headers(response_headers, now_ns)
        if self.shared is not None:
            await self.shared.observe_headers(response_headers, now_ns)
            if status in (418, 429):
                until_ns = self.limits.banned_until_ns if status == 418 else self.limits.blocked_until_ns
                retry_after = response_headers.get("Retry-After")
                delay_ns = int(float(retry_after) * 1e9) if retry_after else 60_000_000_000
                await self.shared.observe_rejection(status == 418, max(until_ns, now_ns + delay_ns), now_ns)
        return self._interpret(endpoint, status, raw, response_headers, now_ns)

    async def _reserve(self, cost: int, orders: int, is_write: bool) -> int:
        """Wait until the request fits every budget window (ours, and the shared one when configured),
        then count it; returns the time it may be sent. Checked again after every wait: requests that
        waited together for a new window must not all go at once."""
        while True:
            now_ns = self.clock.timestamp_ns()
            wait_ns = self.limits.wait_ns(cost, orders, now_ns)
            if wait_ns == 0 and is_write:
                self.breaker.before_call(now_ns)
            if wait_ns == 0 and self.shared is not None:
                wait_ns = await self.shared.reserve(cost, orders, now_ns)
            if wait_ns == 0:
                self.limits.consume(cost, orders, now_ns)
                return now_ns
            await asyncio.sleep(wait_ns / 1e9)

    def _failed(self, endpoint: Endpoint) -> None:
        if endpoint.is_write:
            self.breaker.on_failure(self.clock.timestamp_ns())

    def _interpret(self, endpoint: Endpoint, status: int, raw: bytes, headers: Mapping[str, str], now_ns: int) -> Any:
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = None
        if status in (418, 429):
            retry_after = headers.get("Retry-After")
            raise self.limits.observe_rejection(status, float(retry_after) if retry_after else None, now_ns)
        code = int(body.get("code", 0)) if isinstance(body, dict) and "msg" in body else 0
        message = str(body.get("msg", "")) if isinstance(body, dict) else ""
        if status >= 500 or code in _UNKNOWN_CODES:
            self._failed(endpoint)
            kind = UnknownOutcome if endpoint.is_write else TemporaryError
            raise kind(f"{endpoint.method} {endpoint.path}: HTTP {status} {message}".rstrip())
        if status >= 400 or code < 0:
            if endpoint.is_write:
                self.breaker.on_success()  # the exchange answered: the path works, the request was wrong
            if endpoint.orders and code in _INSUFFICIENT:
                raise InsufficientFunds(message, code)
            if endpoint.orders:
                raise InvalidOrderError(f"Binance error {code}: {message}", code)
            raise BinanceApiError(code, message, status)
        if endpoint.is_write:
            self.breaker.on_success()
        return body


async def with_retries(
    call: Callable[[], Awaitable[T]],
    attempts: int = 5,
    base_delay_s: float = 0.5,
    max_delay_s: float = 8.0,
    rng: random.Random | None = None,
) -> T:
    """The one retry helper: retries `TemporaryError` (not `UnknownOutcome`, not refusals) with
    exponential backoff and full jitter; `RateLimited` waits its Retry-After; a ban is raised."""
    from kestrel.core.errors import RateLimited

    generator = rng or random.Random(0)
    for attempt in range(attempts):
        try:
            return await call()
        except UnknownOutcome:
            raise
        except RateLimited as error:
            if error.banned or attempt == attempts - 1:
                raise
            await asyncio.sleep(error.retry_after_ms / 1000)
        except TemporaryError:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(generator.uniform(0, min(max_delay_s, base_delay_s * 2**attempt)))
    raise AssertionError("unreachable")
