"""R-MD-4/6/7 against the simulator: rotation before the 24 h cut, watchdog, shutdown notice, paced
SUBSCRIBE, clock skew, stale snapshots, bad frames, REST fallback, Redis."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
import redis

from kestrel.binance.websocket.client import StreamSettings
from kestrel.core.bus import MessageBus
from kestrel.core.enums import Market
from kestrel.core.events import BookTicker, MarketEvent, QualityFlag
from kestrel.sim import FaultPlan, ProtocolLimits
from kestrel.storage.redis_cache import RedisPublisher
from tests.marketdata.simulated import feed_config, running_feed, simulator, until

DAY_S = 86_400.0


def all_streaming(feed: object) -> bool:
    return all(c.streaming for c in feed.connections)  # type: ignore[attr-defined]


async def test_connections_rotate_before_the_24h_cut_without_losing_anything(shared_data: Path) -> None:
    lifetime_s = 4.0  # the simulator's "24 h", scaled; pings scaled out of the way
    limits = ProtocolLimits(ping_interval_s_futures=DAY_S * 10, pong_timeout_s_futures=DAY_S * 20)
    async with simulator(
        shared_data, markets=[Market.FUTURES], symbols=6, time_scale=lifetime_s / DAY_S, limits=limits
    ) as sim:
        config = feed_config(
            sim, streams=["bookTicker", "depth@100ms"], connection_lifetime_s=lifetime_s, rotate_before_cut_s=2.5
        )  # rotate 1.5 s after connecting: 2.5 s of slack before the cut on a loaded machine
        async with running_feed(config) as feed:
            await until(lambda: all_streaming(feed), 10, "streaming")
            await asyncio.sleep(5.0)
            stats = feed.stats()
        cut = sim.stats()["connections"]["closed_lifetime"]
    assert stats["connections"]["rotations"] >= 2 * len(feed.connections)
    assert cut == 0  # every connection was replaced before the exchange cut it
    total = stats["total"]
    assert total["gaps_detected"] == 0 and total["duplicates_detected"] == 0 and total["resyncs"] == 0
    assert stats["connections"]["reconnects"] == 0


async def test_watchdog_reconnects_a_stalled_connection_and_flags_the_loss(shared_data: Path) -> None:
    async with simulator(shared_data, markets=[Market.FUTURES], symbols=4) as sim:
        config = feed_config(sim, streams=["bookTicker", "aggTrade", "depth@100ms"], heartbeat_timeout_s=0.6)
        async with running_feed(config) as feed:
            await until(lambda: all_streaming(feed), 10, "streaming")
            await asyncio.sleep(0.5)
            sim.stall_all(2.0)
            await until(lambda: feed.stats()["connections"]["watchdog_timeouts"] >= 2, 5, "watchdog")
            await until(lambda: all_streaming(feed), 10, "streaming again")
            await asyncio.sleep(1.0)
            stats = feed.stats()
    assert stats["connections"]["reconnects"] >= 2
    assert stats["total"]["gaps_detected"] >= 1  # the stall cost depth messages: found, and resynced
    assert all(item["book_synced"] for item in stats["per_symbol"].values())


async def test_spot_shutdown_notice_reconnects_at_once(shared_data: Path) -> None:
    async with simulator(shared_data, markets=[Market.SPOT], symbols=3) as sim:
        config = feed_config(sim, markets=["spot"], streams=["bookTicker", "depth@100ms"])
        async with running_feed(config) as feed:
            await until(lambda: all_streaming(feed), 10, "streaming")
            assert sim.send_shutdown_notice() == 1
            await until(lambda: feed.connections[0].counters.shutdown_notices == 1, 5, "notice")
            waited = await until(lambda: all_streaming(feed), 5, "streaming again")
    assert waited < 1.0  # no backoff after a notice
    assert feed.connections[0].counters.reconnects == 1


async def test_streams_beyond_the_url_are_subscribed_at_a_paced_rate(shared_data: Path) -> None:
    async with simulator(shared_data, markets=[Market.FUTURES], symbols=20) as sim:
        config = feed_config(sim, streams=["bookTicker", "depth@100ms"], subscribe_messages_per_s=8)
        settings = StreamSettings(url_max_chars=80, subscribe_batch=4, subscribe_messages_per_s=8)
        async with running_feed(config, stream_settings=settings) as feed:
            await until(lambda: all_streaming(feed), 10, "streaming")
            await until(lambda: len(feed.stats()["per_symbol"]) == 20, 10, "every symbol")
            await until(lambda: feed.connections[0].counters.control_replies == 10, 5, "every reply")
            counters = feed.connections[0].counters
        limits = sim.stats()["connections"]
    assert counters.subscribe_messages == 10 and counters.control_errors == 0  # 40 streams: 2 in the URL
    assert limits["closed_rate_limit"] == 0


async def test_clock_skew_sets_degraded_and_is_not_counted_as_latency(shared_data: Path) -> None:
    async with simulator(shared_data, markets=[Market.FUTURES], symbols=3) as sim:
        config = feed_config(
            sim, streams=["bookTicker", "depth@100ms"], drift_poll_interval_s=0.1, drift_ewma_alpha=1.0
        )
        bus = MessageBus()
        flagged: list[MarketEvent] = []
        bus.subscribe("data.book_ticker.*", lambda e: flagged.append(e) if e.flags & QualityFlag.DEGRADED else None)
        async with running_feed(config, bus=bus) as feed:
            await until(lambda: all_streaming(feed), 10, "streaming")
            assert not feed.stats()["clock"]["futures"]["degraded"]
            sim.set_clock_skew_ms(400)
            await until(lambda: feed.stats()["clock"]["futures"]["degraded"], 5, "drift seen")
            await until(lambda: bool(flagged), 5, "a degraded event")
            stats = feed.stats()
    assert 350 < stats["clock"]["futures"]["offset_ms"] < 450
    assert stats["total"]["degraded_symbols"] == 3
    assert stats["total"]["latency_ms"]["p50"] < 100  # corrected by the measured offset


async def test_stale_snapshots_are_counted_and_the_books_still_sync(shared_data: Path) -> None:
    """The simulator serves half its snapshots as the book was 30 s ago: older than anything a client
    subscribed 1 s after its start has buffered (the simulator counts every snapshot older than its
    current book; one that is still newer than what a client buffered is usable, and not stale to it)."""
    faults = FaultPlan(stale_snapshot_rate=0.5, stale_snapshot_age_ms=30_000)
    async with simulator(shared_data, markets=[Market.FUTURES], symbols=6, faults=faults) as sim:
        await asyncio.sleep(1.0)  # book history before anyone subscribes
        config = feed_config(sim, streams=["depth@100ms"])
        async with running_feed(config) as feed:
            await until(lambda: all_streaming(feed), 10, "streaming")
            await until(
                lambda: (
                    len(feed.stats()["per_symbol"]) == 6
                    and all(s["book_synced"] for s in feed.stats()["per_symbol"].values())
                ),
                20,
                "every book synced",
            )
            stats = feed.stats()
        injected = sim.stats()["rest"]["stale_snapshots_injected"]
    found = stats["total"]["stale_snapshots"]
    assert 1 <= found <= injected
    assert stats["problems"]["stale_snapshot"] == found  # counted once each, logged once per minute


async def test_malformed_frames_and_unknown_events_are_counted_logged_once_and_survived(shared_data: Path) -> None:
    async with simulator(shared_data, markets=[Market.FUTURES], symbols=2) as sim:
        config = feed_config(sim, streams=["bookTicker"])
        async with running_feed(config) as feed:
            await until(lambda: all_streaming(feed), 10, "streaming")
            connection = feed.connections[0]
            now = feed.clock.timestamp_ns()
            for _ in range(5):  # exactly what a shard hands over when such frames arrive
                connection.on_frame(b'{"stream":"btcusdt@bookTicker","data":{"u":"x"}}', now)
                connection.on_frame(b'{"stream":"btcusdt@ticker","data":{}}', now)
            before = feed.messages
            await until(lambda: feed.messages > before + 5, 5, "still streaming")
            problems = feed.audit.problems
            assert problems.counts == {"malformed_frame": 5, "unknown_event_type": 5}
            assert problems._since_logged == {"malformed_frame": 4, "unknown_event_type": 4}  # logged once each
            assert all_streaming(feed)


async def test_rest_fallback_serves_tops_while_a_shard_cannot_reconnect(shared_data: Path) -> None:
    limits = ProtocolLimits(connections_per_5min=1)  # the one connection, then no more
    async with simulator(shared_data, markets=[Market.FUTURES], symbols=5, limits=limits) as sim:
        config = feed_config(sim, streams=["bookTicker"], rest_fallback_after_s=0.2, reconnect_alert_after=3)
        settings = StreamSettings(backoff_initial_s=0.1, backoff_max_s=0.2)
        bus = MessageBus()
        tops: list[BookTicker] = []
        bus.subscribe("data.book_ticker.*", tops.append)
        async with running_feed(config, bus=bus, stream_settings=settings) as feed:
            await until(lambda: all_streaming(feed), 10, "streaming")
            sim.disconnect_all()
            await until(lambda: feed.rest_fallback_events == 5, 5, "a REST top of every symbol")
            await until(lambda: feed.connections[0].counters.alerts == 1, 5, "the alert")
            await asyncio.sleep(0.5)  # the cooldown (60 s) holds further polls back
            assert feed.rest_fallback_events == 5
    from_rest = [t for t in tops if t.flags & QualityFlag.FROM_REST]
    assert sorted(t.symbol for t in from_rest) == sorted(sim.symbols(Market.FUTURES))
    assert all(t.bid_price < t.ask_price for t in from_rest)


@pytest.mark.redis
async def test_redis_holds_every_symbols_top_and_stream_entries(shared_data: Path, redis_url: str) -> None:
    async with simulator(shared_data, markets=[Market.FUTURES, Market.SPOT], symbols=5) as sim:
        config = feed_config(sim, markets=["futures", "spot"], streams=["bookTicker", "depth@100ms"])
        publisher = RedisPublisher(redis_url, ttl_s=5, flush_interval_ms=20)
        await publisher.start()
        async with running_feed(config, redis=publisher) as feed:
            await until(lambda: all_streaming(feed), 10, "streaming")
            await asyncio.sleep(2.0)
            keys = sorted(feed.tops)
        await publisher.close()
    client = redis.Redis.from_url(redis_url)
    assert len(keys) == 10
    for key in keys:
        top = orjson.loads(client.get(f"mkt:top:{key}"))
        assert top["bid"] < top["ask"] and top["u"] > 0
        assert client.xlen(f"mkt:tick:{key}") > 0 and client.xlen(f"mkt:depth:{key}") > 0
    client.close()
    assert publisher.stats.failed_flushes == 0


async def test_a_gap_ratio_above_the_limit_rebuilds_the_book(shared_data: Path) -> None:
    async with simulator(shared_data, markets=[Market.FUTURES], symbols=2) as sim:
        config = feed_config(sim, streams=["depth@100ms"], gap_ratio_rebuild_pct=0.2)
        async with running_feed(config) as feed:
            await until(lambda: all_streaming(feed), 10, "streaming")
            symbol = sim.symbols(Market.FUTURES)[0]
            state = feed.sequencer.symbol(Market.FUTURES, symbol)
            await until(lambda: state.book.is_synced, 10, "synced")
            now = feed.clock.timestamp_ns()
            feed._roll_minute(now)  # open a minute now...
            sim.inject_gap(Market.FUTURES, symbol)
            await until(lambda: state.book.counters.gaps == 1, 5, "the gap")
            await until(lambda: state.book.is_synced, 10, "resynced after the gap")
            resyncs = state.book.counters.resyncs
            feed._roll_minute(now + 61 * 1_000_000_000)  # ...and close it: 1 gap in a few dozen messages
            quality = feed.audit.symbol(f"futures:{symbol}")
            assert quality.rebuilds == 1 and quality.last_gap_ratio_pct > 0.2
            assert state.book.counters.resyncs == resyncs + 1  # rebuilt from a fresh snapshot
            await until(lambda: state.book.is_synced, 10, "rebuilt")


@pytest.mark.redis
async def test_a_redis_restart_mid_run_loses_no_in_process_data(
    shared_data: Path, redis_url: str, tmp_path: Path
) -> None:
    from tests.storage.test_redis_cache import _free_port, _start_redis

    port = _free_port()
    server = _start_redis(port, tmp_path)
    async with simulator(shared_data, markets=[Market.FUTURES], symbols=3) as sim:
        config = feed_config(sim, streams=["bookTicker", "depth@100ms"])
        publisher = RedisPublisher(f"redis://127.0.0.1:{port}/0", flush_interval_ms=20, retry_max_s=0.2)
        await publisher.start()
        try:
            async with running_feed(config, redis=publisher) as feed:
                await until(lambda: all_streaming(feed), 10, "streaming")
                await asyncio.sleep(0.5)
                server.kill()
                server.wait(timeout=10)
                during = feed.messages
                await asyncio.sleep(1.5)  # Redis is down: ingest goes on
                assert feed.messages > during and all_streaming(feed) and not publisher.stats.connected
                assert all(s["book_synced"] for s in feed.stats()["per_symbol"].values())
                server = _start_redis(port, tmp_path)
                await until(lambda: publisher.stats.reconnects == 1, 10, "Redis back")
                await asyncio.sleep(0.5)
                keys = sorted(feed.tops)
                stats = feed.stats()
                client = redis.Redis(port=port)
                assert all(client.exists(f"mkt:top:{key}") and client.xlen(f"mkt:tick:{key}") for key in keys)
                client.close()
            await publisher.close()
        finally:
            server.kill()
            server.wait(timeout=10)
    assert stats["total"]["gaps_detected"] == 0 and stats["connections"]["reconnects"] == 0
    assert len(keys) == 3 and publisher.stats.failed_flushes > 0 and publisher.stats.dropped == 0
