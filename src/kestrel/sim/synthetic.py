"""The seeded synthetic market: many `SyntheticSymbol`s on one simulated timeline.

It is a discrete-event simulation: a heap holds each symbol's next book event and next taker order
(exponential inter-arrival times drawn from the symbol's own generator) plus the market-wide timers
(diff-depth flushes per update speed, mark price every second). `advance(until_ns)` processes every
event up to a point of the timeline and publishes the resulting messages; the server calls it as the
wall clock moves, so *what* happens depends only on the seed, *when* it is sent on the clock.

Messages: every book change updates the diff-depth accumulators of every speed (`@depth`,
`@depth@100ms`, ... flushed at their period, `U` = first and `u` = last update id in the period, `pu` =
the `u` of the previous message of that stream) and, on USD-M, the real-time `@depth@0ms` stream; a
change of the best bid/ask publishes a bookTicker carrying the update id; taker orders publish trade
and aggTrade messages.
"""

from __future__ import annotations

import heapq
import itertools
import re
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from kestrel.core.enums import Market
from kestrel.sim import wire
from kestrel.sim.book import BookView
from kestrel.sim.derivatives import Derivatives
from kestrel.sim.hub import Payload
from kestrel.sim.instruments import ExchangeInfoCatalog, SymbolSpec, exchange_info_document
from kestrel.sim.klines import Bar, KlineSeries, bucket_open
from kestrel.sim.options import RateModel
from kestrel.sim.state import UnknownSymbol
from kestrel.sim.streams import DEPTH_SPEEDS_MS, StreamKind, parse_stream
from kestrel.sim.synthetic_symbol import AggTradeRecord, Change, SyntheticSymbol, TradeRecord


class Publish(Protocol):
    def __call__(
        self,
        market: Market,
        stream: str,
        kind: StreamKind,
        symbol: str | None,
        payload: Payload,
        on_demand: bool = False,
    ) -> None: ...


Subscribed = Callable[[Market], set[str]]


class MarketObserver(Protocol):
    """Sees every book change, trade and mark update as it happens (the trading half feeds its
    matching engine from these, so orders meet the book the streams show)."""

    def on_book(self, spec: SymbolSpec, changes: list[Change], time_ns: int) -> None: ...

    def on_trades(self, spec: SymbolSpec, trades: list[TradeRecord], time_ns: int) -> None: ...

    def on_mark(self, spec: SymbolSpec, mark: Derivatives, time_ns: int) -> None: ...


NANOS_PER_MILLI = 1_000_000
MARK_PERIOD_NS = 1_000 * NANOS_PER_MILLI

# heap event kinds
_BOOK, _TRADE, _FLUSH, _MARK, _KLINE, _LIQUIDATION = 0, 1, 2, 3, 4, 5
# kline stream cadence: USD-M 250 ms; spot 1 s for `1s` bars and 2 s for the rest (spec §2)
_KLINE_PERIOD_MS = {Market.FUTURES: 250, Market.SPOT: 1000}
_MARKET_INDEX = {Market.FUTURES: 0, Market.SPOT: 1}
_PARTIAL_DEPTH = re.compile(r"@depth(?:5|10|20)(?:@|$)")


@dataclass(slots=True)
class DepthAccumulator:
    """Changes of one diff-depth stream since its last message."""

    name: str
    speed_ms: int
    first_id: int = 0
    final_id: int = 0
    previous_final_id: int = 0  # `pu` of the next message
    last_change_ns: int = 0
    changes: dict[tuple[bool, int], int] = field(default_factory=dict)


class SymbolChannel:
    """A symbol with its stream names and per-stream state."""

    def __init__(self, symbol: SyntheticSymbol, speeds: Iterable[int]) -> None:
        self.state = symbol
        spec = symbol.spec
        self.spec = spec
        name = spec.stream_symbol
        self.book_ticker = f"{name}@bookTicker"
        self.trade = f"{name}@trade"
        self.agg_trade = f"{name}@aggTrade"
        self.depth_realtime = f"{name}@depth@0ms"
        self.mark_1s = f"{name}@markPrice@1s"
        self.mark_3s = f"{name}@markPrice"
        speeds = list(speeds)
        self.depth = [
            DepthAccumulator(f"{name}@depth" if index == 0 else f"{name}@depth@{speed}ms", speed)
            for index, speed in enumerate(speeds)
            if speed > 0
        ]
        self.realtime_previous_id = symbol.update_id
        self.update_times: deque[tuple[int, int]] = deque(maxlen=4096)  # (event time, update id after it)
        for accumulator in self.depth:
            accumulator.previous_final_id = symbol.update_id
        self.force_order = f"{name}@forceOrder"
        self.partial_previous_id: dict[str, int] = {}  # USD-M partial depth stream → its last `u`
        self.derivatives: Derivatives | None = None
        self.klines: KlineSeries | None = None


def _flat_bar(close: int) -> Bar:
    return Bar(close, close, close, close)


class SyntheticMarket:
    """All synthetic symbols of every simulated market, and the event heap that drives them."""

    def __init__(
        self,
        specs: dict[Market, list[SymbolSpec]],
        catalogs: dict[Market, ExchangeInfoCatalog],
        seed: int,
        rates: RateModel,
        publish: Publish,
        subscribed: Subscribed,
        history_limit: int = 8192,
        kline_history_minutes: int = 1500,
    ) -> None:
        self.seed = seed
        self._specs = specs
        self._catalogs = catalogs
        self.publish = publish
        self.subscribed = subscribed
        self.kline_history_minutes = kline_history_minutes
        self._kline_emitted: dict[tuple[Market, str], int] = {}  # stream → bucket open of its last message
        self.skew_ns = 0  # the server clock's skew, applied to every event time
        self.channels: list[SymbolChannel] = []
        self.by_key: dict[tuple[Market, str], SymbolChannel] = {}
        for market, market_specs in specs.items():
            for spec in market_specs:
                channel = SymbolChannel(SyntheticSymbol(spec, seed, rates, history_limit), DEPTH_SPEEDS_MS[market])
                self.channels.append(channel)
                self.by_key[(market, spec.symbol)] = channel
        self.markets = tuple(specs)
        self._heap: list[tuple[int, int, int, int]] = []
        speeds = {speed for market in self.markets for speed in DEPTH_SPEEDS_MS[market] if speed > 0}
        self._dirty: dict[int, list[tuple[SymbolChannel, DepthAccumulator]]] = {speed: [] for speed in speeds}
        self._sequence = itertools.count()
        self.now_ns = 0
        self.last_event_ns: dict[tuple[Market, str], int] = {}
        self.observers: list[MarketObserver] = []

    # ---- timeline -----------------------------------------------------------------------------
    def origin_ns(self) -> int | None:
        return None

    def exchange_offset_ns(self) -> int:
        return 0

    def finished(self) -> bool:
        return False

    def start(self, origin_ns: int) -> None:
        """Schedule every symbol's first events and the market timers from `origin_ns`."""
        self.now_ns = origin_ns
        for index, channel in enumerate(self.channels):
            state = channel.state
            self._push(origin_ns + state.next_book_delay_ns(), _BOOK, index)
            delay = state.next_trade_delay_ns()
            if delay is not None:
                self._push(origin_ns + delay, _TRADE, index)
            if state.spec.market is Market.FUTURES:
                channel.derivatives = Derivatives.create(state, self.seed, origin_ns)
                if state.liquidation_rate > 0:
                    self._push(origin_ns + state.next_delay_ns(state.liquidation_rate), _LIQUIDATION, index)
            channel.klines = KlineSeries(
                state.spec, self.seed, origin_ns // NANOS_PER_MILLI, state.mid_ticks, self.kline_history_minutes
            )
        speeds = sorted({speed for market in self.markets for speed in DEPTH_SPEEDS_MS[market] if speed > 0})
        for speed in speeds:
            period = speed * NANOS_PER_MILLI
            self._push((origin_ns // period + 1) * period, _FLUSH, speed)
        if Market.FUTURES in self.markets:
            self._push((origin_ns // MARK_PERIOD_NS + 1) * MARK_PERIOD_NS, _MARK, 0)
        for market in self.markets:
            period = _KLINE_PERIOD_MS[market] * NANOS_PER_MILLI
            self._push((origin_ns // period + 1) * period, _KLINE, _MARKET_INDEX[market])

    def _push(self, time_ns: int, kind: int, index: int) -> None:
        heapq.heappush(self._heap, (time_ns, next(self._sequence), kind, index))

    def next_event_ns(self) -> int | None:
        return self._heap[0][0] if self._heap else None

    def advance(self, until_ns: int, max_events: int = 1 << 62) -> int:
        """Process the events up to `until_ns` (at most `max_events`); returns how many were processed."""
        heap = self._heap
        processed = 0
        while heap and heap[0][0] <= until_ns and processed < max_events:
            time_ns, _, kind, index = heapq.heappop(heap)
            self.now_ns = time_ns
            processed += 1
            if kind == _BOOK:
                channel = self.channels[index]
                self._after_changes(channel, channel.state.book_event(), time_ns)
                self._push(time_ns + channel.state.next_book_delay_ns(), _BOOK, index)
            elif kind == _TRADE:
                self._taker(self.channels[index], time_ns)
                delay = self.channels[index].state.next_trade_delay_ns()
                if delay is not None:
                    self._push(time_ns + delay, _TRADE, index)
            elif kind == _FLUSH:
                self._flush(index, time_ns)
                self._push(time_ns + index * NANOS_PER_MILLI, _FLUSH, index)
            elif kind == _LIQUIDATION:
                channel = self.channels[index]
                self._liquidation(channel, time_ns)
                self._push(time_ns + channel.state.next_delay_ns(channel.state.liquidation_rate), _LIQUIDATION, index)
            elif kind == _MARK:
                self._marks(time_ns)
                self._push(time_ns + MARK_PERIOD_NS, _MARK, 0)
            else:
                market = Market.FUTURES if index == 0 else Market.SPOT
                self._kline_streams(market, time_ns)
                self._push(time_ns + _KLINE_PERIOD_MS[market] * NANOS_PER_MILLI, _KLINE, index)
        return processed

    def _ms(self, time_ns: int) -> int:
        return (time_ns + self.skew_ns) // NANOS_PER_MILLI

    # ---- event handling -----------------------------------------------------------------------
    def _after_changes(self, channel: SymbolChannel, changes: list[Change], time_ns: int) -> None:
        if not changes:
            return
        spec = channel.spec
        for observer in self.observers:
            observer.on_book(spec, changes, time_ns)
        market = spec.market
        first_id = changes[0][3]
        final_id = changes[-1][3]
        self.last_event_ns[(market, spec.symbol)] = time_ns
        channel.update_times.append((time_ns, final_id))
        for accumulator in channel.depth:
            if not accumulator.changes:
                accumulator.first_id = first_id
                self._dirty[accumulator.speed_ms].append((channel, accumulator))
            pending = accumulator.changes
            for is_bid, price, quantity, _ in changes:
                pending[(is_bid, price)] = quantity
            accumulator.final_id = final_id
            accumulator.last_change_ns = time_ns
        if market is Market.FUTURES:
            previous = channel.realtime_previous_id
            channel.realtime_previous_id = final_id
            event_ms = self._ms(time_ns)

            def realtime() -> bytes:
                levels = {(is_bid, price): quantity for is_bid, price, quantity, _ in changes}
                return wire.depth_update(spec, first_id, final_id, previous, levels, event_ms, event_ms)

            self.publish(market, channel.depth_realtime, StreamKind.DEPTH, spec.symbol, realtime)
        top = channel.state.top()
        if top != channel.state.last_top:
            channel.state.last_top = top
            update_id = channel.state.update_id
            event_ms = self._ms(time_ns)

            def ticker() -> bytes:
                return wire.book_ticker(spec, update_id, (top[0], top[1]), (top[2], top[3]), event_ms, event_ms)

            self.publish(market, channel.book_ticker, StreamKind.BOOK_TICKER, spec.symbol, ticker)

    def _taker(self, channel: SymbolChannel, time_ns: int) -> None:
        changes, trades, aggregates = channel.state.taker_order(time_ns)
        self._publish_fills(channel, changes, trades, aggregates, time_ns)

    def _publish_fills(
        self,
        channel: SymbolChannel,
        changes: list[Change],
        trades: list[TradeRecord],
        aggregates: list[AggTradeRecord],
        time_ns: int,
    ) -> None:
        spec = channel.spec
        market = spec.market
        time_ms = self._ms(time_ns)
        klines = channel.klines
        for record in trades:
            if klines is not None:
                klines.on_trade(
                    time_ns // NANOS_PER_MILLI,
                    record.price,
                    record.quantity,
                    record.trade_id,
                    not record.buyer_is_maker,
                )
            payload = wire.trade(spec, record.trade_id, record.price, record.quantity, record.buyer_is_maker, time_ms)
            self.publish(market, channel.trade, StreamKind.TRADE, spec.symbol, payload)
        if channel.derivatives is not None:
            channel.derivatives.on_trades(trades)
        for aggregate in aggregates:
            self.publish(
                market, channel.agg_trade, StreamKind.AGG_TRADE, spec.symbol, self._agg_payload(spec, aggregate)
            )
        for observer in self.observers:
            observer.on_trades(spec, trades, time_ns)
        self._after_changes(channel, changes, time_ns)

    def _agg_payload(self, spec: SymbolSpec, record: AggTradeRecord) -> Callable[[], bytes]:
        time_ms = self._ms(record.time_ns)

        def render() -> bytes:
            return wire.agg_trade(
                spec,
                record.agg_id,
                record.price,
                record.quantity,
                record.first_trade_id,
                record.last_trade_id,
                time_ms,
                record.buyer_is_maker,
            )

        return render

    def _flush(self, speed_ms: int, time_ns: int) -> None:
        """Diff-depth messages of every stream of this speed that changed since its last message
        (in the order the streams first changed: deterministic)."""
        event_ms = self._ms(time_ns)
        dirty, self._dirty[speed_ms] = self._dirty[speed_ms], []
        for channel, accumulator in dirty:
            spec = channel.spec
            first_id, final_id = accumulator.first_id, accumulator.final_id
            previous, changes = accumulator.previous_final_id, accumulator.changes
            transaction_ms = self._ms(accumulator.last_change_ns)
            accumulator.changes = {}
            accumulator.previous_final_id = final_id

            def render(
                spec: SymbolSpec = spec,
                first_id: int = first_id,
                final_id: int = final_id,
                previous: int = previous,
                changes: dict[tuple[bool, int], int] = changes,
                transaction_ms: int = transaction_ms,
            ) -> bytes:
                return wire.depth_update(spec, first_id, final_id, previous, changes, event_ms, transaction_ms)

            self.publish(spec.market, accumulator.name, StreamKind.DEPTH, spec.symbol, render)
        self._partial_depth(speed_ms, time_ns)

    def _partial_depth(self, speed_ms: int, time_ns: int) -> None:
        """`<symbol>@depth<N>[@speed]`: the top N levels every period, for subscribed streams only.
        Spot sends `{lastUpdateId, bids, asks}`; USD-M keeps the depthUpdate envelope (spec §2.6)."""
        event_ms = self._ms(time_ns)
        for market in self.markets:
            for name in sorted(
                n
                for n in self.subscribed(market)
                if "@depth" in n and n[n.index("@depth") + 6 : n.index("@depth") + 7].isdigit()
            ):
                parsed = parse_stream(name, market)
                if parsed is None or parsed.kind is not StreamKind.PARTIAL_DEPTH or parsed.speed_ms != speed_ms:
                    continue
                channel = self.by_key.get((market, parsed.symbol or ""))
                if channel is None or parsed.levels is None:
                    continue
                book = channel.state.book
                bids, asks = book.top(parsed.levels)
                spec = channel.spec
                if market is Market.SPOT:
                    payload = wire.partial_depth_spot(spec, book.last_update_id, bids, asks)
                else:
                    final = book.last_update_id
                    previous = channel.partial_previous_id.get(name, final)
                    channel.partial_previous_id[name] = final
                    transaction_ms = self._ms(self.last_event_ns.get((market, spec.symbol), time_ns))
                    first = previous + 1 if final > previous else final
                    payload = wire.partial_depth_futures(
                        spec, first, final, previous, bids, asks, event_ms, transaction_ms
                    )
                self.publish(market, name, StreamKind.PARTIAL_DEPTH, spec.symbol, payload, on_demand=True)

    def _kline_streams(self, market: Market, time_ns: int) -> None:
        """Current-bar updates of every subscribed kline stream; a bucket's final bar (`x: true`)
        goes out first when the bucket has just closed."""
        now_ms = time_ns // NANOS_PER_MILLI
        event_ms = self._ms(time_ns)
        spot_two_second_tick = market is Market.SPOT and (now_ms // 1000) % 2 == 0
        for name in sorted(name for name in self.subscribed(market) if "@kline_" in name):
            symbol_part, _, interval = name.partition("@kline_")
            channel = self.by_key.get((market, symbol_part.upper()))
            if channel is None or channel.klines is None:
                continue
            if market is Market.SPOT and interval != "1s" and not spot_two_second_tick:
                continue
            klines = channel.klines
            current = bucket_open(interval, now_ms)
            key = (market, name)
            previous = self._kline_emitted.get(key)
            messages: list[dict[str, object]] = []
            if previous is not None and previous != current:
                closed_bar = klines.bar(interval, previous, now_ms - 1)
                if closed_bar is not None:
                    messages.append(klines.stream_fields(interval, previous, closed_bar, True, event_ms))
            bar = klines.bar(interval, current, now_ms) or _flat_bar(klines.last_close)
            messages.append(klines.stream_fields(interval, current, bar, False, event_ms))
            self._kline_emitted[key] = current
            for fields in messages:
                payload = orjson.dumps(fields)
                self.publish(market, name, StreamKind.KLINE, channel.spec.symbol, payload, on_demand=True)

    # ---- mark price, funding, liquidations (USD-M) ---------------------------------------------
    def _marks(self, time_ns: int) -> None:
        event_ms = self._ms(time_ns)
        now_ms = time_ns // NANOS_PER_MILLI
        every_third = (time_ns // MARK_PERIOD_NS) % 3 == 0
        updates: list[dict[str, object]] = []
        for channel in self.channels:
            derivatives = channel.derivatives
            if derivatives is None:
                continue
            derivatives.update(channel.state, now_ms)
            for observer in self.observers:
                observer.on_mark(channel.spec, derivatives, time_ns)
            fields = derivatives.mark_fields(event_ms)
            updates.append(fields)
            payload = orjson.dumps(fields)
            symbol = channel.spec.symbol
            self.publish(Market.FUTURES, channel.mark_1s, StreamKind.MARK_PRICE, symbol, payload)
            if every_third:
                self.publish(Market.FUTURES, channel.mark_3s, StreamKind.MARK_PRICE, symbol, payload)
        self.publish(Market.FUTURES, "!markPrice@arr@1s", StreamKind.MARK_PRICE, None, lambda: orjson.dumps(updates))
        if every_third:
            self.publish(Market.FUTURES, "!markPrice@arr", StreamKind.MARK_PRICE, None, lambda: orjson.dumps(updates))

    def _liquidation(self, channel: SymbolChannel, time_ns: int) -> None:
        """A forced taker order several times the usual size, reported on `forceOrder`."""
        state = channel.state
        sell = state.rng.random() < 0.5  # SELL liquidates a long
        changes, trades, aggregates = state.taker_order(time_ns, buy=not sell, size_factor=4.0)
        self._publish_fills(channel, changes, trades, aggregates, time_ns)
        derivatives = channel.derivatives
        if derivatives is None:
            return
        fields = derivatives.force_order_fields(trades, sell, self._ms(time_ns))
        if fields is not None:
            payload = orjson.dumps(fields)
            symbol = channel.spec.symbol
            self.publish(Market.FUTURES, channel.force_order, StreamKind.FORCE_ORDER, symbol, payload)
            self.publish(Market.FUTURES, "!forceOrder@arr", StreamKind.FORCE_ORDER, symbol, payload)

    # ---- MarketSource: queries (REST and the test API) ----------------------------------------
    def specs(self, market: Market) -> list[SymbolSpec]:
        return list(self._specs.get(market, []))

    def exchange_info(self, market: Market, server_time_ms: int) -> dict[str, Any]:
        catalog = self._catalogs.get(market)
        if catalog is None:
            return {"timezone": "UTC", "serverTime": server_time_ms, "rateLimits": [], "symbols": []}
        return exchange_info_document(catalog, self._specs.get(market, []), server_time_ms)

    def set_skew_ns(self, skew_ns: int) -> None:
        self.skew_ns = skew_ns

    def _channel(self, market: Market, symbol: str) -> SymbolChannel:
        channel = self.by_key.get((market, symbol))
        if channel is None:
            raise UnknownSymbol(symbol)
        return channel

    def canonical(self, market: Market, name: str) -> str:
        """`@depth@250ms` on USD-M (`@depth@1000ms` on spot) is the bare `@depth` stream."""
        parsed = parse_stream(name, market)
        if parsed is not None and parsed.kind is StreamKind.DEPTH and parsed.speed_ms == DEPTH_SPEEDS_MS[market][0]:
            return f"{name.partition('@')[0]}@depth"
        return name

    def depth_snapshot(self, market: Market, symbol: str, limit: int, stale_ms: int) -> tuple[bytes, bool]:
        """The current book (or the book as it was `stale_ms` ago) as a REST depth body."""
        channel = self._channel(market, symbol)
        book = channel.state.book
        spec = channel.spec
        event_ms = self._ms(self.now_ns)
        transaction_ms = self._ms(self.last_event_ns.get((market, symbol), self.now_ns))
        if stale_ms:
            target = self._update_id_at(channel, self.now_ns - stale_ms * NANOS_PER_MILLI)
            bid_levels, ask_levels = book.levels_at(target)
            bids = [(price, bid_levels[price]) for price in sorted(bid_levels, reverse=True)[:limit]]
            asks = [(price, ask_levels[price]) for price in sorted(ask_levels)[:limit]]
            body = wire.depth_snapshot(spec, target, bids, asks, event_ms, transaction_ms)
            return body, target < book.last_update_id
        bids, asks = book.top(limit)
        return wire.depth_snapshot(spec, book.last_update_id, bids, asks, event_ms, transaction_ms), False

    @staticmethod
    def _update_id_at(channel: SymbolChannel, time_ns: int) -> int:
        """The book's update id at `time_ns` (as far back as the undo log reaches)."""
        book = channel.state.book
        oldest = book.oldest_reachable_id()
        target = oldest
        for event_ns, update_id in reversed(channel.update_times):
            if event_ns <= time_ns:
                target = update_id
                break
        return max(target, oldest)

    def book_view(self, market: Market, symbol: str, limit: int | None = None) -> BookView:
        channel = self._channel(market, symbol)
        spec = channel.spec
        return channel.state.book.view(spec.price, spec.quantity, limit)

    def book_view_at(self, market: Market, symbol: str, update_id: int) -> BookView:
        channel = self._channel(market, symbol)
        spec = channel.spec
        return channel.state.book.view_at(update_id, spec.price, spec.quantity)

    def klines(
        self, market: Market, symbol: str, interval: str, start_ms: int | None, end_ms: int | None, limit: int
    ) -> list[list[object]]:
        klines = self._channel(market, symbol).klines
        if klines is None:
            return []
        now_ms = self.now_ns // NANOS_PER_MILLI
        return [
            klines.rest_row(interval, open_ms, bar)
            for open_ms, bar in klines.bars(interval, start_ms, end_ms, limit, now_ms)
        ]

    def agg_trades(self, market: Market, symbol: str) -> list[dict[str, object]]:
        channel = self._channel(market, symbol)
        spec = channel.spec
        return [
            wire.agg_trade_fields(
                spec,
                record.agg_id,
                record.price,
                record.quantity,
                record.first_trade_id,
                record.last_trade_id,
                self._ms(record.time_ns),
                record.buyer_is_maker,
            )
            for record in channel.state.recent_agg_trades
        ]

    def premium_index(self, symbol: str | None) -> list[dict[str, object]]:
        channels = [self._channel(Market.FUTURES, symbol)] if symbol else self._futures_channels()
        now_ms = self._ms(self.now_ns)
        return [channel.derivatives.premium_row(now_ms) for channel in channels if channel.derivatives is not None]

    def funding_rates(self, symbol: str | None) -> list[dict[str, object]]:
        channels = [self._channel(Market.FUTURES, symbol)] if symbol else self._futures_channels()
        rows: list[dict[str, object]] = []
        for channel in channels:
            if channel.derivatives is not None:
                rows.extend(channel.derivatives.funding_rows())
        rows.sort(key=lambda row: (int(str(row["fundingTime"])), str(row["symbol"])))
        return rows

    def open_interest(self, symbol: str) -> dict[str, object]:
        derivatives = self._channel(Market.FUTURES, symbol).derivatives
        if derivatives is None:
            raise UnknownSymbol(symbol)
        return derivatives.open_interest_row(self._ms(self.now_ns))

    def _futures_channels(self) -> list[SymbolChannel]:
        return [channel for channel in self.channels if channel.spec.market is Market.FUTURES]
