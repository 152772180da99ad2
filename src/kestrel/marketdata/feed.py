"""The market-data feed: discovery → shards → streams → decode → sequence → quality → sinks.

`MarketDataFeed` runs inside one asyncio loop. The hot path (`_on_event`, per frame) is synchronous:
decode once, apply the sequence rules (book, ids), measure latency, then hand the event to the sinks
— the in-process bus and hot cache, the recorder, Redis — none of which blocks (the recorder and Redis
write from their own thread / task). Everything slow or periodic runs in background tasks: depth
snapshots (rate-limited by request weight), the clock-drift poll, the housekeeping timer (recorder
checkpoints, Redis depth, pending gaps, the per-minute gap ratio), the REST fallback while a shard is
down, and the daily exchangeInfo refresh.

Publishing rule: events flagged DUPLICATE, or OUT_OF_ORDER trades/tops (stale), are recorded (the
recording keeps everything that arrived, flagged) but not published: they carry no new information.
Bus topics are ``data.<stream>.<market>.<SYMBOL>`` with the storage stream names (``depth``,
``book_ticker``, ``trade``, ``agg_trade``, ``depth_snapshot``, ``kline``, ``mark_price``, ``liquidation``).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass, field
from typing import Any

import msgspec

from kestrel.binance.book_sync import ResyncReason
from kestrel.binance.market_rest import MarketDataRest
from kestrel.binance.schemas.exchange_info import select_tradable_usdt
from kestrel.binance.sequence import REJECTED_FLAGS
from kestrel.binance.websocket.client import StreamConnection, StreamSettings
from kestrel.binance.websocket.frames import FrameDecoder, MalformedFrame, UnknownStream
from kestrel.config.models import KestrelConfig
from kestrel.core.bus import MessageBus
from kestrel.core.clock import Clock
from kestrel.core.enums import Market
from kestrel.core.errors import ConfigurationError, KestrelError, RateLimited
from kestrel.core.events import NANOS_PER_MILLI, NANOS_PER_SECOND, BookTicker, DepthUpdate, MarketEvent, QualityFlag
from kestrel.core.instrument import Instrument
from kestrel.core.logs import get_logger
from kestrel.marketdata.drift import ClockDrift
from kestrel.marketdata.feed_stats import feed_stats, status_line
from kestrel.marketdata.gc_policy import GcPolicy
from kestrel.marketdata.policies import Backoff, RestCooldown
from kestrel.marketdata.quality import QualityAudit, SymbolQuality
from kestrel.marketdata.sequencer import Sequencer, SymbolSequence
from kestrel.marketdata.shards import Route, Shard, SymbolRegistry, plan_shards
from kestrel.storage.recorder import ParquetRecorder
from kestrel.storage.redis_cache import RedisPublisher
from kestrel.storage.schema import STREAM_BY_TYPE

log = get_logger(__name__)

_DEGRADED = int(QualityFlag.DEGRADED)
_DUPLICATE = int(QualityFlag.DUPLICATE)
_RESYNCED = int(QualityFlag.RESYNCED)
_HOUSEKEEPING_S = 0.02
_EVENT_TYPES = tuple(STREAM_BY_TYPE)


@dataclass
class SymbolSlot:
    """What the hot path needs about one (market, symbol), looked up once per event."""

    key: str
    sequence: SymbolSequence
    quality: SymbolQuality
    topics: dict[type[Any], str] = field(default_factory=dict)
    rotation_duplicates: int = 0


@dataclass
class MarketFeed:
    market: Market
    rest: MarketDataRest
    decoder: FrameDecoder
    drift: ClockDrift
    ws_base: str
    instruments: list[Instrument] = field(default_factory=list)


class MarketDataFeed:
    def __init__(
        self,
        config: KestrelConfig,
        clock: Clock,
        *,
        bus: MessageBus | None = None,
        recorder: ParquetRecorder | None = None,
        redis: RedisPublisher | None = None,
        stream_settings: StreamSettings | None = None,
        manage_gc: bool = False,
    ) -> None:
        self.config = config
        self.ingest = config.data.ingest
        self.clock = clock
        self.bus = bus
        self.recorder = recorder
        self.redis = redis
        self.rng = random.Random(config.seed)
        ingest = self.ingest
        self.stream_settings = stream_settings or StreamSettings(
            heartbeat_timeout_s=ingest.heartbeat_timeout_s,
            backoff_initial_s=ingest.backoff_initial_ms / 1000,
            backoff_max_s=ingest.backoff_max_ms / 1000,
            backoff_jitter=ingest.backoff_jitter,
            subscribe_messages_per_s=ingest.subscribe_messages_per_s,
            connection_lifetime_s=ingest.connection_lifetime_s,
            rotate_before_cut_s=ingest.rotate_before_cut_s,
            reconnect_alert_after=ingest.reconnect_alert_after,
        )
        self.sequencer = Sequencer()
        self.audit = QualityAudit(ingest.lag_degraded_ms, ingest.gap_ratio_rebuild_pct)
        self.registry = SymbolRegistry()
        self.markets: dict[Market, MarketFeed] = {}
        self.shards: list[Shard] = []
        self.connections: list[StreamConnection] = []
        self.tops: dict[str, BookTicker] = {}  # the in-process hot cache: latest top per instrument key
        self.cooldown = RestCooldown(ingest.rest_fallback_cooldown_s, ingest.rest_fallback_cooldown_max_s)
        self.rest_fallback_events = 0
        self.snapshots_requested = 0
        self.started_ns = 0
        self._slots: dict[tuple[Market, str], SymbolSlot] = {}
        self._snapshot_queue: asyncio.Queue[tuple[Market, str]] = asyncio.Queue()
        self._snapshot_backoff: dict[tuple[Market, str], Backoff] = {}
        self._pending_gaps: set[tuple[Market, str]] = set()
        self._dirty_books: set[tuple[Market, str]] = set()
        self._down_since: dict[int, int] = {}
        self._fallback_inflight: set[str] = set()
        self._fallback_tasks: set[asyncio.Task[None]] = set()
        self._tasks: list[asyncio.Task[Any]] = []
        self._stopping = False
        self.streaming_at_stop: int | None = None
        self.gc = GcPolicy() if manage_gc else None

    # ---- start ----------------------------------------------------------------------------------
    async def start(self) -> None:
        """Discover symbols, measure the clock, plan shards, open every connection."""
        self.started_ns = self.clock.timestamp_ns()
        venue = self.config.venue
        timeout = venue.request_timeout_ms
        for market in self.ingest.markets:
            endpoints = venue.futures if market is Market.FUTURES else venue.spot
            self.markets[market] = MarketFeed(
                market,
                MarketDataRest(market, endpoints.rest_url, self.clock, timeout),
                FrameDecoder(market),
                ClockDrift(self.ingest.drift_ewma_alpha, self.ingest.drift_degraded_ms),
                endpoints.ws_url,
            )
        await self._discover()
        for feed in self.markets.values():
            await self._poll_drift(feed)
        symbols = {m: [str(i.symbol) for i in feed.instruments] for m, feed in self.markets.items()}
        self.shards = plan_shards(symbols, self.ingest.streams, self.ingest.streams_per_connection)
        for shard in self.shards:
            self._start_connection(shard)
        if self.gc is not None:
            self.gc.start()
        workers = [self._snapshot_worker() for _ in range(self.ingest.snapshot_concurrency)]
        for coroutine in (*workers, self._housekeeping(), self._drift_loop(), self._refresh_loop()):
            self._tasks.append(asyncio.create_task(coroutine))
        log.info(
            "ingest started",
            markets=[m.value for m in self.markets],
            symbols=len(self.registry),
            shards=len(self.shards),
            streams=sum(len(s.streams) for s in self.shards),
        )

    async def _discover(self) -> None:
        wanted = self.ingest.symbols
        requested = None if wanted == "all" else {s.upper() for s in wanted}
        found: set[str] = set()
        everything: list[Instrument] = []
        for feed in self.markets.values():
            instruments, _ = await feed.rest.exchange_info()
            tradable = select_tradable_usdt(instruments)
            if requested is not None:
                tradable = [i for i in tradable if str(i.symbol) in requested]
                found |= {str(i.symbol) for i in tradable}
            feed.instruments = sorted(tradable, key=lambda i: str(i.symbol))
            everything += feed.instruments
        if requested is not None and requested - found:
            missing = ", ".join(sorted(requested - found))
            markets = ", ".join(m.value for m in self.markets)
            raise ConfigurationError(f"no TRADING USDT instrument named {missing} on {markets}")
        if not everything:
            raise ConfigurationError("no TRADING USDT instrument to ingest")
        self.registry.update(everything)

    def _start_connection(self, shard: Shard) -> None:
        feed = self.markets[shard.market]
        route = f"/{shard.route.value}" if shard.route is not Route.SPOT else ""
        connection = StreamConnection(
            shard.name,
            f"{feed.ws_base}{route}/stream",
            shard.streams,
            self.clock,
            lambda frame, ts: None,
            self.stream_settings,
            Backoff(
                self.stream_settings.backoff_initial_s,
                self.stream_settings.backoff_max_s,
                self.stream_settings.backoff_jitter,
                random.Random(self.rng.random()),
            ),
        )
        connection.on_frame = self._frame_handler(feed, connection)
        self.connections.append(connection)
        self._down_since[id(connection)] = self.clock.timestamp_ns()
        self._tasks.append(asyncio.create_task(connection.run(), name=f"shard {shard.name}"))

    # ---- hot path -------------------------------------------------------------------------------
    def _frame_handler(self, feed: MarketFeed, connection: StreamConnection) -> Any:
        decode = feed.decoder.decode
        problems = self.audit.problems
        on_event = self._on_event

        def on_frame(frame: bytes, ts_init: int) -> None:
            try:
                event = decode(frame, ts_init)
            except MalformedFrame as exc:
                problems.record("malformed_frame", ts_init, str(exc)[:200], shard=connection.name)
                return
            except UnknownStream as exc:
                problems.record("unknown_event_type", ts_init, str(exc)[:200], shard=connection.name)
                return
            if isinstance(event, _EVENT_TYPES):  # control replies and notices are the connection's
                on_event(event, feed, connection.rotating)

        return on_frame

    def _slot(self, market: Market, symbol: str) -> SymbolSlot:
        key = f"{market.value}:{symbol}"
        slot = SymbolSlot(key, self.sequencer.symbol(market, symbol), self.audit.symbol(key))
        for event_type, spec in STREAM_BY_TYPE.items():
            slot.topics[event_type] = f"data.{spec.name}.{market.value}.{symbol}"
        self._slots[(market, symbol)] = slot
        return slot

    def _on_event(self, event: MarketEvent, feed: MarketFeed, rotating: bool = False) -> None:
        market, symbol = event.market, event.symbol
        slot = self._slots.get((market, symbol)) or self._slot(market, symbol)
        event, flags = self.sequencer.process_for(slot.sequence, event)
        quality = slot.quality
        quality.messages += 1
        if flags & _DUPLICATE and rotating:
            slot.rotation_duplicates += 1  # the make-before-break overlap, not a data fault
        # streams without an exchange time (ts_event == ts_init) are not measured
        latency = event.ts_init - event.ts_event + feed.drift.offset_ns
        if event.ts_event != event.ts_init and self.audit.observe_latency(quality, latency):
            event = msgspec.structs.replace(event, flags=event.flags | _DEGRADED)
        if self.recorder is not None:
            self.recorder.record(event)
        kind = type(event)
        if kind is DepthUpdate:
            self._after_depth(slot, market, symbol)
        elif flags & REJECTED_FLAGS:
            return
        if flags & _DUPLICATE:
            return
        if kind is BookTicker:  # the cache first, then the news (a handler may read the cache)
            self.tops[slot.key] = event  # type: ignore[assignment]
            if self.redis is not None:
                self.redis.publish_top(slot.key, event)  # type: ignore[arg-type]
        if self.bus is not None:
            self.bus.publish(slot.topics[kind], event)

    def _after_depth(self, slot: SymbolSlot, market: Market, symbol: str) -> None:
        sync = slot.sequence.book
        key = (market, symbol)
        if sync.wants_snapshot:
            self._request_snapshot(key)
        if sync.gap_pending:
            self._pending_gaps.add(key)
        if sync.is_synced:
            self._dirty_books.add(key)

    # ---- snapshots ------------------------------------------------------------------------------
    def _request_snapshot(self, key: tuple[Market, str], delay_s: float = 0.0) -> None:
        sync = self.sequencer.symbol(*key).book
        sync.snapshot_pending = True
        self.snapshots_requested += 1
        if delay_s > 0:
            asyncio.get_running_loop().call_later(delay_s, self._snapshot_queue.put_nowait, key)
        else:
            self._snapshot_queue.put_nowait(key)

    async def _snapshot_worker(self) -> None:
        limit = self.ingest.depth_snapshot_limit
        while True:
            market, symbol = await self._snapshot_queue.get()
            feed = self.markets[market]
            slot = self._slots.get((market, symbol)) or self._slot(market, symbol)
            sync = slot.sequence.book
            backoff = self._snapshot_backoff.get((market, symbol))
            if backoff is None:
                backoff = self._snapshot_backoff[(market, symbol)] = Backoff(rng=random.Random(self.rng.random()))
            try:
                # futures snapshots stop at 1000 levels; spot goes to 5000
                snapshot = await feed.rest.depth_snapshot(
                    symbol, min(limit, 1000) if market is Market.FUTURES else limit
                )
            except RateLimited as exc:
                sync.snapshot_failed()
                self.audit.problems.record("snapshot_rate_limited", self.clock.timestamp_ns(), str(exc))
                self._request_snapshot((market, symbol), max(exc.retry_after_ms / 1000, backoff.next_delay()))
                continue
            except (KestrelError, OSError) as exc:
                sync.snapshot_failed()
                self.audit.problems.record("snapshot_failed", self.clock.timestamp_ns(), str(exc)[:200], symbol=symbol)
                self._request_snapshot((market, symbol), backoff.next_delay())
                continue
            event, flags = self.sequencer.process_snapshot(snapshot)
            if self.recorder is not None:
                self.recorder.record(event)
            if flags & _RESYNCED:
                backoff.reset()
                self._dirty_books.add((market, symbol))
                if self.bus is not None:
                    self.bus.publish(slot.topics[type(event)], event)
            else:
                kind = (
                    "stale_snapshot" if sync.last_resync_reason is ResyncReason.STALE_SNAPSHOT else "snapshot_unusable"
                )
                self.audit.problems.record(kind, self.clock.timestamp_ns(), f"{market.value}:{symbol}")
                if sync.wants_snapshot:
                    # older than the buffered diffs (or the buffer broke): ask again once the stream moved on
                    self._request_snapshot((market, symbol), min(backoff.next_delay(), 1.0))

    # ---- periodic work --------------------------------------------------------------------------
    async def _housekeeping(self) -> None:
        window_ns = self.ingest.depth_reorder_window_ms * NANOS_PER_MILLI
        depth_levels = self.config.storage.redis_depth_levels
        last_fallback = 0
        while True:
            await asyncio.sleep(_HOUSEKEEPING_S)
            now = self.clock.timestamp_ns()
            if self.recorder is not None:
                self.recorder.tick()
            for key in list(self._pending_gaps):
                sync = self.sequencer.symbol(*key).book
                if not sync.gap_pending:
                    self._pending_gaps.discard(key)
                elif sync.expire_gap(now, window_ns):
                    self._pending_gaps.discard(key)
                    if sync.wants_snapshot:
                        self._request_snapshot(key)
            if self._dirty_books:
                dirty, self._dirty_books = self._dirty_books, set()
                if self.redis is not None:
                    for market, symbol in dirty:
                        book = self.sequencer.symbol(market, symbol).book.book
                        bids, asks = book.bids(depth_levels), book.asks(depth_levels)
                        instrument_key = f"{market.value}:{symbol}"
                        self.redis.publish_depth(instrument_key, book.update_id, book.ts_event, now, bids, asks)
            self._roll_minute(now)
            if self.gc is not None:
                self.gc.tick(now, self.recorder.stats.flushes if self.recorder is not None else 0)
            if now - last_fallback >= 250 * NANOS_PER_MILLI:
                last_fallback = now
                self._rest_fallback(now)

    def _roll_minute(self, now: int) -> None:
        rebuild = self.audit.roll_minute(now, self._minute_problems)
        for key in rebuild:
            market_text, symbol = key.split(":", 1)
            market = Market(market_text)
            sync = self.sequencer.symbol(market, symbol).book
            self.audit.symbol(key).rebuilds += 1
            log.warning("gap ratio above the limit: rebuilding the book", symbol=key)
            sync.request_rebuild()

    def _minute_problems(self, key: str) -> int:
        market_text, symbol = key.split(":", 1)
        state = self.sequencer.symbol(Market(market_text), symbol)
        return state.book.counters.gaps + state.trades.counters.drops + state.aggregate_trades.counters.drops

    async def _poll_drift(self, feed: MarketFeed) -> None:
        try:
            server_ms, sent_ms, received_ms = await feed.rest.server_time()
        except (KestrelError, OSError) as exc:
            self.audit.problems.record("server_time_failed", self.clock.timestamp_ns(), str(exc)[:200])
            return
        feed.drift.observe(server_ms, sent_ms, received_ms)
        self.audit.drift_degraded = any(f.drift.degraded for f in self.markets.values())

    async def _drift_loop(self) -> None:
        while True:
            await asyncio.sleep(self.ingest.drift_poll_interval_s)
            for feed in self.markets.values():
                await self._poll_drift(feed)

    async def _refresh_loop(self) -> None:
        """Daily rules refresh (R-MD-1): new symbols get new shards; delisted ones simply go quiet."""
        while True:
            await asyncio.sleep(self.ingest.exchange_info_refresh_h * 3600)
            try:
                before = set(self.registry.instruments)
                await self._discover()
            except (KestrelError, OSError) as exc:
                log.warning("exchangeInfo refresh failed", error=str(exc))
                continue
            added = sorted(set(self.registry.instruments) - before)
            by_market: dict[Market, list[str]] = {}
            for market, symbol in added:
                by_market.setdefault(market, []).append(symbol)
            for shard in plan_shards(by_market, self.ingest.streams, self.ingest.streams_per_connection):
                shard = Shard(len(self.shards), shard.market, shard.route, shard.streams)
                self.shards.append(shard)
                self._start_connection(shard)
            if added:
                log.info("new symbols subscribed", symbols=[f"{m.value}:{s}" for m, s in added])

    # ---- REST fallback while a shard is down ----------------------------------------------------
    def _rest_fallback(self, now: int) -> None:
        after_ns = int(self.ingest.rest_fallback_after_s * NANOS_PER_SECOND)
        for shard, connection in zip(self.shards, self.connections, strict=False):
            token = id(connection)
            if connection.streaming:
                if token in self._down_since:
                    del self._down_since[token]
                    for symbol in shard.symbols:
                        self.cooldown.clear(f"{shard.market.value}:{symbol}")
                continue
            since = self._down_since.setdefault(token, now)
            if now - since < after_ns or shard.route is Route.MARKET:
                continue  # a top of book is what the fallback serves: public (or spot) shards only
            for symbol in shard.symbols:
                key = f"{shard.market.value}:{symbol}"
                if key not in self._fallback_inflight and self.cooldown.is_ready(key, now):
                    self._fallback_inflight.add(key)
                    task = asyncio.create_task(self._fetch_top(shard.market, symbol, key))
                    self._fallback_tasks.add(task)  # a strong reference until done, then forgotten
                    task.add_done_callback(self._fallback_tasks.discard)

    async def _fetch_top(self, market: Market, symbol: str, key: str) -> None:
        try:
            top = await self.markets[market].rest.top_of_book(symbol)
        except (KestrelError, OSError) as exc:
            self.cooldown.on_failure(key, self.clock.timestamp_ns())
            self.audit.problems.record("rest_fallback_failed", self.clock.timestamp_ns(), str(exc)[:200], symbol=key)
            return
        finally:
            self._fallback_inflight.discard(key)
        self.cooldown.on_success(key, self.clock.timestamp_ns())
        self.rest_fallback_events += 1
        self.tops[key] = top
        if self.recorder is not None:
            self.recorder.record(top)
        if self.bus is not None:
            self.bus.publish(f"data.book_ticker.{market.value}.{symbol}", top)
        if self.redis is not None:
            self.redis.publish_top(key, top)

    # ---- stop / report --------------------------------------------------------------------------
    async def stop(self) -> None:
        if self.gc is not None:
            self.gc.stop()
        self.streaming_at_stop = sum(1 for c in self.connections if c.streaming)
        self._stopping = True
        for connection in self.connections:
            connection.stop()
        for task in (*self._tasks, *self._fallback_tasks):
            task.cancel()
        for task in (*self._tasks, *self._fallback_tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for feed in self.markets.values():
            await feed.rest.close()

    def stats(self) -> dict[str, Any]:
        return feed_stats(self)

    def status_line(self, messages_per_s: float) -> str:
        return status_line(self, messages_per_s)

    @property
    def messages(self) -> int:
        return sum(quality.messages for quality in self.audit.symbols.values())
