"""Redis hot cache and Redis Streams publisher (R-MD-9), when `storage.redis_url` is set.

Keys (`{key}` is the instrument key ``{market}:{SYMBOL}``, e.g. ``futures:BTCUSDT``, because the same
symbol trades on both markets):

- ``mkt:top:{key}``   string, SETEX `hot_cache_ttl_s`: JSON of the latest top of book
  (``u, bid, bid_qty, ask, ask_qty, mid, spread_bps, depth_top1_usdt, ts_event, ts_init, flags``);
- ``mkt:tick:{key}``  stream (MAXLEN ~ `stream_maxlen`): one entry per top-of-book change per micro-batch;
- ``mkt:depth:{key}`` stream (MAXLEN ~): the top `depth_levels` levels of the local book after each
  micro-batch in which it changed (``u, ts_event, ts_init, bids, asks`` — levels as JSON arrays).

Hot path: `publish_*` only store the latest value per key (coalesced per micro-batch); a background
task writes everything in one pipeline every `flush_interval_ms`. Redis being slow, down or restarted
never blocks ingest nor loses in-process data: entries wait and are
retried with backoff; what had to be dropped (beyond `max_ticks_per_key`) is counted.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from kestrel.core.events import BookTicker
from kestrel.core.logs import get_logger

log = get_logger(__name__)

TOP_KEY = "mkt:top:{key}"
TICK_STREAM = "mkt:tick:{key}"
DEPTH_STREAM = "mkt:depth:{key}"


@dataclass
class RedisStats:
    flushes: int = 0
    entries_written: int = 0
    failed_flushes: int = 0
    reconnects: int = 0
    dropped: int = 0  # entries discarded because Redis stayed down past the pending bound
    connected: bool = False


def top_fields(top: BookTicker) -> dict[str, Any]:
    """The documented fields of a top-of-book entry."""
    return {
        "u": top.update_id,
        "bid": top.bid_price,
        "bid_qty": top.bid_qty,
        "ask": top.ask_price,
        "ask_qty": top.ask_qty,
        "mid": top.mid,
        "spread_bps": top.spread_bps,
        "depth_top1_usdt": top.depth_top1_usdt,
        "ts_event": top.ts_event,
        "ts_init": top.ts_init,
        "flags": top.flags,
    }


class RedisPublisher:
    def __init__(
        self,
        url: str,
        *,
        ttl_s: int = 5,
        stream_maxlen: int = 10_000,
        flush_interval_ms: int = 20,
        max_ticks_per_key: int = 3_000,
        retry_max_s: float = 2.0,
    ) -> None:
        self.url = url
        self.ttl_s = ttl_s
        self.stream_maxlen = stream_maxlen
        self.flush_interval_s = flush_interval_ms / 1000
        self.max_ticks_per_key = max_ticks_per_key
        self.retry_max_s = retry_max_s
        self.stats = RedisStats()
        self._client: aioredis.Redis | None = None
        self._tops: dict[str, BookTicker] = {}
        self._ticks: dict[str, list[tuple[int, BookTicker]]] = {}
        self._batch = 0  # micro-batch number: one tick entry per key per batch
        self._depth: dict[str, dict[str, Any]] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._wake = asyncio.Event()

    # ---- hot path (synchronous, O(1)) -----------------------------------------------------------
    def publish_top(self, key: str, top: BookTicker) -> None:
        """A new top of book: cached under mkt:top and appended to mkt:tick.

        Ticks are coalesced to the latest per key per micro-batch (flush attempt). While Redis is down
        each micro-batch keeps its entry, up to `max_ticks_per_key` per key (older ones are dropped
        and counted), so the stream regains the outage at micro-batch resolution when Redis is back.
        """
        self._tops[key] = top
        ticks = self._ticks.get(key)
        if ticks is None:
            self._ticks[key] = [(self._batch, top)]
        elif ticks[-1][0] == self._batch:
            ticks[-1] = (self._batch, top)
        else:
            ticks.append((self._batch, top))
            if len(ticks) > self.max_ticks_per_key:
                del ticks[0]
                self.stats.dropped += 1

    def publish_depth(
        self, key: str, update_id: int, ts_event: int, ts_init: int, bids: list[tuple[float, float]],
        asks: list[tuple[float, float]],
    ) -> None:  # fmt: skip
        self._depth[key] = {"u": update_id, "ts_event": ts_event, "ts_init": ts_init, "bids": bids, "asks": asks}

    @property
    def pending(self) -> int:
        return len(self._tops) + sum(map(len, self._ticks.values())) + len(self._depth)

    # ---- background writer ----------------------------------------------------------------------
    async def start(self) -> None:
        self._client = aioredis.Redis.from_url(self.url, socket_connect_timeout=1.0, socket_timeout=2.0)
        self._task = asyncio.create_task(self._run(), name="kestrel-redis-publisher")

    async def close(self, timeout_s: float = 2.0) -> None:
        """Flush what is pending (up to `timeout_s`), stop the task, close the connection."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._task, timeout_s)
            if not self._task.done():
                self._task.cancel()
        if self._client is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._client.aclose()
            self._client = None

    async def _run(self) -> None:
        delay = self.flush_interval_s
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            self._wake.clear()
            ok = await self.flush()
            if self._stopping and (ok or not self.pending):
                return
            delay = self.flush_interval_s if ok else min(max(delay * 2, 0.1), self.retry_max_s)

    async def flush(self) -> bool:
        """Write everything pending in one pipeline; on failure keep it for the next attempt."""
        if not self.pending or self._client is None:
            return True
        self._batch += 1
        tops, ticks, depth = self._tops, self._ticks, self._depth
        self._tops, self._ticks, self._depth = {}, {}, {}
        pipeline = self._client.pipeline(transaction=False)
        for key, top in tops.items():
            # SET with EX is SETEX (redis-py deprecates the setex helper)
            pipeline.set(TOP_KEY.format(key=key), orjson.dumps(top_fields(top)), ex=self.ttl_s)
        entries = 0
        for key, items in ticks.items():
            for _, top in items:
                fields: dict[Any, Any] = {name: orjson.dumps(value) for name, value in top_fields(top).items()}
                pipeline.xadd(TICK_STREAM.format(key=key), fields, maxlen=self.stream_maxlen, approximate=True)
                entries += 1
        for key, snapshot in depth.items():
            fields = {name: orjson.dumps(value) for name, value in snapshot.items()}
            pipeline.xadd(DEPTH_STREAM.format(key=key), fields, maxlen=self.stream_maxlen, approximate=True)
            entries += 1
        try:
            await pipeline.execute()
        except (RedisError, OSError) as exc:
            self.stats.failed_flushes += 1
            if self.stats.connected:
                log.warning("redis unavailable; buffering", error=str(exc), pending=entries)
            self.stats.connected = False
            self._restore(tops, ticks, depth)
            return False
        if not self.stats.connected:
            if self.stats.flushes:
                self.stats.reconnects += 1
                log.info("redis available again")
            self.stats.connected = True
        self.stats.flushes += 1
        self.stats.entries_written += entries
        return True

    def _restore(
        self,
        tops: dict[str, BookTicker],
        ticks: dict[str, list[tuple[int, BookTicker]]],
        depth: dict[str, dict[str, Any]],
    ) -> None:
        """Put a failed batch back in front of what arrived meanwhile (newer values win)."""
        for key, top in tops.items():
            self._tops.setdefault(key, top)
        for key, items in ticks.items():
            merged = items + self._ticks.get(key, [])
            if len(merged) > self.max_ticks_per_key:
                self.stats.dropped += len(merged) - self.max_ticks_per_key
                merged = merged[-self.max_ticks_per_key :]
            self._ticks[key] = merged
        for key, snapshot in depth.items():
            self._depth.setdefault(key, snapshot)
