"""The feed against the local Binance simulator: the issue's acceptance scenarios, over real sockets."""

from __future__ import annotations

import asyncio
import random
from itertools import pairwise
from pathlib import Path
from statistics import median
from typing import Any

import pytest

from kestrel.core.bus import MessageBus
from kestrel.core.enums import Market
from kestrel.core.events import AggregateTrade, DepthSnapshot, DepthUpdate, MarketEvent, QualityFlag
from kestrel.sim import FaultPlan
from tests.marketdata.simulated import feed_config, running_feed, same_top, sim_book, simulator, until

ID_STREAMS = ["depth", "bookTicker", "aggTrade", "trade"]  # faults on these are observable by ids


def book_checker(feed: Any, sim: Any, bus: MessageBus, levels: int | None = None) -> list[tuple[str, int, bool]]:
    """After every resync (a snapshot that (re)built a book), compare the book with the simulator's:
    whole, or its best `levels` per side."""
    results: list[tuple[str, int, bool]] = []

    def on_snapshot(event: DepthSnapshot) -> None:
        if not event.flags & QualityFlag.RESYNCED:
            return
        book = feed.sequencer.symbol(event.market, event.symbol).book.book
        if levels is None:
            equal = book.as_dicts() == sim_book(sim, event.market, event.symbol, book.update_id)
        else:
            equal = same_top(book, sim, event.market, event.symbol, levels)
        results.append((event.symbol, book.update_id, equal))

    bus.subscribe("data.depth_snapshot.*", on_snapshot)
    return results


def seen(feed: Any, kind: str) -> set[str]:
    """Symbols with at least one event of `kind` (depth, ticker, aggregate) so far."""
    result = set()
    for (_, symbol), state in feed.sequencer.symbols().items():
        counters = {"depth": state.book.counters, "ticker": state.tickers.counters}.get(kind)
        counters = counters or state.aggregate_trades.counters
        if counters.messages:
            result.add(symbol)
    return result


@pytest.mark.slow
async def test_300_usdm_symbols_with_faults_every_fault_counted_exactly(shared_data: Path) -> None:
    """Faults start once every symbol has streamed (a message withheld before a client's first one of its
    stream cannot be told from subscribing a moment later, by anyone); then every fault is counted.

    Sequence gaps are injected one at a time (`inject_gap`), never twice in a row on one stream: two
    adjacent withheld diffs are one break in the `pu` chain, and no client can tell it from one.
    """
    faults = FaultPlan(
        drop_rate=0.002,
        drop_streams=["aggTrade"],
        duplicate_rate=0.002,
        duplicate_streams=["depth", "bookTicker", "aggTrade"],
        reorder_rate=0.002,
        reorder_streams=["depth", "bookTicker"],
    )
    async with simulator(shared_data, markets=[Market.FUTURES], symbols=300) as sim:
        # snapshots of 100 levels (weight 5): 300 books fit one minute's request weight (2400 on USD-M)
        config = feed_config(
            sim, streams=["bookTicker", "aggTrade", "depth@100ms"], streams_per_connection=100, depth_snapshot_limit=100
        )
        bus = MessageBus()
        async with running_feed(config, bus=bus) as feed:
            checks = book_checker(feed, sim, bus, levels=50)
            assert len(feed.registry) == 300 and len(feed.connections) == 9
            await until(lambda: all(c.streaming for c in feed.connections), 20, "every shard streaming")
            await until(lambda: len(seen(feed, "depth") & seen(feed, "ticker")) == 300, 20, "depth and tops")
            traded = seen(feed, "aggregate")
            sim.set_faults(faults)
            rng = random.Random(3)
            symbols = sim.symbols(Market.FUTURES)
            for _ in range(40):  # a gap every 0.2 s on a random symbol, 40 in all
                sim.inject_gap(Market.FUTURES, rng.choice(symbols))
                await asyncio.sleep(0.2)
            sim.set_faults(FaultPlan())  # no more faults: let the last ones surface, then compare
            await asyncio.sleep(2.0)
            stats = feed.stats()
            injected = sim.stats()
            for (market, symbol), state in feed.sequencer.symbols().items():
                assert state.book.counters.crossed == 0  # no book ever crossed
                assert state.book.is_synced, symbol  # every gap was resynced
                assert same_top(state.book.book, sim, market, symbol, 50), symbol
        total, sent = stats["total"], injected["total"]
        assert sent["gaps_injected"] > 10 and sent["drops_injected"] > 0 and sent["duplicates_injected"] > 0
        for ours, theirs in (
            ("gaps_detected", "gaps_injected"),
            ("duplicates_detected", "duplicates_injected"),
            ("out_of_order", "reorders_injected"),
        ):
            differ = {
                key: (item[ours], injected["per_symbol"].get(key, {}).get(theirs, 0))
                for key, item in stats["per_symbol"].items()
                if item[ours] != injected["per_symbol"].get(key, {}).get(theirs, 0)
            }
            assert total[ours] == sent[theirs], (ours, total[ours], theirs, sent[theirs], differ)
        keys = [f"futures:{symbol}" for symbol in traded]  # drops: symbols whose trade ids we had seen
        assert sum(stats["per_symbol"][k]["drops_detected"] for k in keys) == sum(
            injected["per_symbol"][k]["drops_injected"] for k in keys if k in injected["per_symbol"]
        )
        assert total["resyncs"] > 0  # a gap while a book is already resyncing needs no second resync
        assert checks and all(equal for _, _, equal in checks), [c for c in checks if not c[2]][:3]
        assert stats["connections"]["reconnects"] == 0 and stats["problems"] == {}


async def test_reconnect_after_every_connection_is_closed(shared_data: Path) -> None:
    async with simulator(shared_data, markets=[Market.FUTURES], symbols=40) as sim:
        config = feed_config(sim, streams=["bookTicker", "aggTrade", "depth@100ms"], streams_per_connection=20)
        bus = MessageBus()
        received: dict[tuple[str, str], list[MarketEvent]] = {}

        def keep(event: MarketEvent) -> None:
            received.setdefault((type(event).__name__, event.symbol), []).append(event)

        bus.subscribe("data.depth.*", keep)
        bus.subscribe("data.agg_trade.*", keep)
        async with running_feed(config, bus=bus) as feed:
            await until(lambda: all(c.streaming for c in feed.connections), 10, "every shard streaming")
            await asyncio.sleep(1.5)
            before = sum(c.counters.reconnects for c in feed.connections)
            closed = sim.disconnect_all()
            assert closed == len(feed.connections) == 6
            await until(
                lambda: sum(c.counters.reconnects for c in feed.connections) == before + 6, 5, "disconnects seen"
            )
            await until(lambda: all(c.streaming for c in feed.connections), 10, "every shard streaming again")
            await asyncio.sleep(1.5)
            reconnect_ms = [ms for c in feed.connections for ms in c.counters.reconnect_ms]
        assert len(reconnect_ms) == 6 and median(reconnect_ms) < 2000
        # nothing missed goes unflagged: every jump in the ids is flagged on the event after it
        jumps = 0
        for (kind, _), events in received.items():
            for before_event, after_event in pairwise(events):
                if kind == "DepthUpdate":
                    assert isinstance(before_event, DepthUpdate) and isinstance(after_event, DepthUpdate)
                    broken = after_event.previous_final_update_id != before_event.final_update_id
                else:
                    assert isinstance(before_event, AggregateTrade) and isinstance(after_event, AggregateTrade)
                    broken = after_event.aggregate_id != before_event.aggregate_id + 1
                if broken:
                    jumps += 1
                    assert after_event.flags & QualityFlag.GAP_BEFORE, (kind, after_event)
        assert jumps > 0  # the outage did lose messages, and each loss was flagged
