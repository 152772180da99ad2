"""Request-weight and order-count budgets shared through Redis by every process trading against one
endpoint (R-EX-4, R-DP-2 service mode).

Binance counts request weight per IP and orders per account, across all our processes; each process's
own `RateLimitTracker` only sees its share. With `venue.shared_budget_redis_url` set, every request
first reserves its cost in Redis: one Lua script checks every window (weight per minute, orders per
10 s / minute / day) against `safety` × its limit and, only if all have room, adds the cost to all of
them — atomically, so two processes racing for the last unit cannot both get it. A request without
room waits for the end of the full window and tries again. Weight windows are keyed by the endpoint
(every key on this host shares them), order windows by a digest of the API key (`budget_scopes`).
Response headers raise the shared counts to what the exchange reports (a higher figure wins, as in the
local tracker); a 429 / 418 blocks every process until its Retry-After. Windows are keyed by their
start on the clock (Binance aligns them so) and expire on their own.

When Redis cannot be reached the request is not sent (`TemporaryError`): going on alone could take the
processes together past the budget, which is what this exists to prevent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from redis import asyncio as aioredis
from redis.exceptions import RedisError

from kestrel.binance.http.ratelimit import RateLimitTracker, Window
from kestrel.core.errors import ConfigurationError, RateLimited, TemporaryError
from kestrel.core.logs import get_logger

log = get_logger(__name__)

NANOS_PER_MILLI = 1_000_000
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
REDIS_CONNECTIONS = 8  # per client; each script call holds one for well under a millisecond
REDIS_WAIT_S = 10.0  # longest wait for a free connection before the request is refused

# KEYS: block key, ban key, then one key per window. ARGV: now_ms, then (cost, cap, ttl_ms) per window.
# Returns 0 when reserved; -1 banned, -2 blocked (429); k > 0 = the k-th window is full.
_RESERVE = """
local now = tonumber(ARGV[1])
if tonumber(redis.call('GET', KEYS[2]) or '0') > now then return -1 end
if tonumber(redis.call('GET', KEYS[1]) or '0') > now then return -2 end
for i = 3, #KEYS do
  local base = 2 + (i - 3) * 3
  local cost = tonumber(ARGV[base])
  if cost > 0 and tonumber(redis.call('GET', KEYS[i]) or '0') + cost > tonumber(ARGV[base + 1]) then
    return i - 2
  end
end
for i = 3, #KEYS do
  local base = 2 + (i - 3) * 3
  local cost = tonumber(ARGV[base])
  if cost > 0 then
    redis.call('INCRBY', KEYS[i], cost)
    redis.call('PEXPIRE', KEYS[i], ARGV[base + 2])
  end
end
return 0
"""

# KEYS: counters or deadlines; ARGV: a value and a ttl_ms per key. Keeps the larger of stored and new.
_RAISE_TO = """
for i = 1, #KEYS do
  local value = tonumber(ARGV[2 * i - 1])
  if tonumber(redis.call('GET', KEYS[i]) or '0') < value then
    redis.call('SET', KEYS[i], ARGV[2 * i - 1], 'PX', ARGV[2 * i])
  end
end
return 0
"""


@dataclass(frozen=True, slots=True)
class BudgetScopes:
    """Redis key prefixes: request weight is counted per IP (every key and the market-data client of
    this host against this endpoint), order counts per account (API key; the key itself is never
    stored, only a digest). 429 / 418 blocks follow the weight scope."""

    weight: str
    orders: str


def budget_scopes(rest_url: str, api_key: str | None, market: str) -> BudgetScopes:
    host = urlsplit(rest_url).netloc or rest_url
    account = hashlib.sha256((api_key or "").encode()).hexdigest()[:16]
    return BudgetScopes(f"kestrel:budget:weight:{market}:{host}", f"kestrel:budget:orders:{market}:{account}")


class SharedBudget:
    """The Redis side of a `RateLimitTracker`'s windows (same limits, same safety)."""

    def __init__(self, redis_url: str, scopes: BudgetScopes, tracker: RateLimitTracker) -> None:
        if not redis_url.startswith(REDIS_SCHEMES):
            raise ConfigurationError("venue.shared_budget_redis_url must be a redis://, rediss:// or unix:// URL")
        self.redis_url = redis_url
        self.scopes = scopes
        self.tracker = tracker
        self._redis: aioredis.Redis | None = None
        self._reserve: Any = None
        self._raise_to: Any = None

    def _client(self) -> aioredis.Redis:
        if self._redis is None:
            # a bounded pool that waits for a free connection: a burst of requests queues here
            # instead of failing with "Too many connections"
            pool = aioredis.BlockingConnectionPool.from_url(
                self.redis_url, max_connections=REDIS_CONNECTIONS, timeout=REDIS_WAIT_S
            )
            self._redis = aioredis.Redis.from_pool(pool)
            self._reserve = self._redis.register_script(_RESERVE)
            self._raise_to = self._redis.register_script(_RAISE_TO)
        return self._redis

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    def _key(self, window: Window, now_ns: int) -> str:
        start_ns = now_ns - now_ns % window.interval_ns
        scope = self.scopes.weight if window.kind == "weight" else self.scopes.orders
        return f"{scope}:{window.interval_ns // NANOS_PER_MILLI}:{start_ns // NANOS_PER_MILLI}"

    async def reserve(self, weight: int, orders: int, now_ns: int) -> int:
        """Reserve a request's cost in every window; 0 when reserved, else the ns to wait before trying
        again. Raises `RateLimited` while banned, `TemporaryError` when Redis is unreachable."""
        windows = list(self.tracker.windows.values())
        keys = [f"{self.scopes.weight}:blocked", f"{self.scopes.weight}:banned"]
        arguments: list[int] = [now_ns // NANOS_PER_MILLI]
        for window in windows:
            keys.append(self._key(window, now_ns))
            ttl_ms = 2 * window.interval_ns // NANOS_PER_MILLI
            arguments += [weight if window.kind == "weight" else orders, self.tracker.cap(window), ttl_ms]
        try:
            client = self._client()
            answer = int(await self._reserve(keys=keys, args=arguments, client=client))
            if answer >= 0:
                if answer == 0:
                    return 0
                full = windows[answer - 1]
                return full.interval_ns - now_ns % full.interval_ns
            until_ms = int(await client.get(keys[1 if answer == -1 else 0]) or 0)
        except RedisError as error:
            raise TemporaryError(f"shared rate-limit budget unavailable (Redis): {error}") from error
        wait_ns = max(until_ms * NANOS_PER_MILLI - now_ns, NANOS_PER_MILLI)
        if answer == -1:
            raise RateLimited("IP banned by the exchange (HTTP 418)", wait_ns // NANOS_PER_MILLI, True)
        return wait_ns

    async def observe_headers(self, headers: Mapping[str, str], now_ns: int) -> None:
        """Raise the shared counts to what the exchange reported (one round trip for all windows)."""
        keys: list[str] = []
        arguments: list[int] = []
        for name, value in headers.items():
            window = self.tracker.header_window(name)
            if window is None or not value.isdigit():
                continue
            keys.append(self._key(window, now_ns))
            arguments += [int(value), 2 * window.interval_ns // NANOS_PER_MILLI]
        if keys:
            await self._raise(keys, arguments)

    async def observe_rejection(self, banned: bool, until_ns: int, now_ns: int) -> None:
        """A 429 (every process waits) or a 418 (every process stops) until `until_ns`."""
        key = f"{self.scopes.weight}:{'banned' if banned else 'blocked'}"
        await self._raise([key], [until_ns // NANOS_PER_MILLI, max(1, (until_ns - now_ns) // NANOS_PER_MILLI) + 1000])

    async def _raise(self, keys: list[str], arguments: list[int]) -> None:
        try:
            client = self._client()
            await self._raise_to(keys=keys, args=arguments, client=client)
        except RedisError as error:  # only a figure lost: the next reservation fails loudly if Redis is down
            log.warning("shared budget update failed", keys=keys, error=str(error))

    async def used(self, now_ns: int) -> dict[str, int]:
        """{"weight/60s": used, ...} in the current windows, as Redis holds them (metrics, tests)."""
        client = self._client()
        result = {}
        for window in self.tracker.windows.values():
            value = await client.get(self._key(window, now_ns))
            result[f"{window.kind}/{window.interval_ns // 1_000_000_000}s"] = int(value or 0)
        return result
