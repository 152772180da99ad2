"""Replay of raw recordings through the simulator: the recorded frames, byte for byte, paced by their
recorded receive times (× speed, or as fast as the clients take them).

Sources: the shared raw recordings read by `kestrel.replay.raw.read_raw` (hftbacktest spot/usdm files,
cryptofeed `*.ws.*` files with their `*.http.*` depth snapshots, found automatically next to them).
Several files are merged by receive time (a day's file and its continuation, several symbols).

Streams are published under their recorded names with the original payloads, ids untouched. A client
asking for another speed of the same diff-depth stream (`btcusdt@depth@100ms` when `@depth@0ms` was
recorded) receives the recorded one, wrapped with the name it asked for: the update ids still chain.

Depth snapshots: until the replay has passed the recorded snapshot, REST serves that snapshot (its
`lastUpdateId` brackets a recorded diff, so a client syncs exactly as it did live); afterwards it serves
the simulator's own book, built from the recorded snapshot plus every replayed diff with the spec's
rules (§3), at the last replayed update id. That book is what `sim.book()` returns, and equals a book
built directly from the raw file.

Time: the timeline runs on the recorder's receive clock; the server clock adds the recording's
exchange-minus-recorder offset (median over the first events), so `serverTime` agrees with the
replayed event times. REST klines, aggTrades and funding history are not recorded: they answer empty
lists; premiumIndex answers the last replayed markPrice, where one was recorded.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from kestrel.core.enums import Market
from kestrel.core.errors import ConfigurationError
from kestrel.replay.raw import FrameKind, RawFrame, merge_by_local_time, read_raw
from kestrel.sim.book import BookView, LevelBook
from kestrel.sim.instruments import ExchangeInfoCatalog, SymbolSpec, exchange_info_document, fixed_text, spec_from_entry
from kestrel.sim.options import SimulatorOptions
from kestrel.sim.state import BookUnavailable, UnknownSymbol
from kestrel.sim.streams import StreamKind, parse_stream
from kestrel.sim.synthetic import Publish, Subscribed
from kestrel.sim.timeline import NANOS_PER_MILLI, Timeline

SCALE_DECIMALS = 8  # book keys: prices and quantities × 10^8 (Binance prints at most 8 decimals)
_FAST_BATCH = 2000  # frames per pump turn when replaying as fast as possible


def _scaled(text: str) -> int:
    whole, _, fraction = text.partition(".")
    return int(whole + fraction.ljust(SCALE_DECIMALS, "0")[:SCALE_DECIMALS])


def _decimals(text: str) -> int:
    return len(text.partition(".")[2])


@dataclass(slots=True)
class _Frame:
    ts_ns: int
    market: Market
    symbol: str
    stream: str
    kind: StreamKind
    payload: bytes


class ReplayBook:
    """The simulator's book of one replayed symbol: the recorded snapshot plus the replayed diffs."""

    def __init__(self, market: Market, snapshot: bytes | None, history_limit: int) -> None:
        self.market = market
        self.book = LevelBook(history_limit)
        self.snapshot_body = snapshot
        self.snapshot: dict[str, Any] | None = orjson.loads(snapshot) if snapshot else None
        self.synced = False
        self.price_decimals = self.quantity_decimals = SCALE_DECIMALS
        self.event_ms = self.transaction_ms = 0
        self.update_times: deque[tuple[int, int]] = deque(maxlen=4096)
        if self.snapshot is not None:
            levels = self.snapshot["bids"] or self.snapshot["asks"]
            if levels:
                self.price_decimals, self.quantity_decimals = _decimals(levels[0][0]), _decimals(levels[0][1])
            self.book.reset(
                int(self.snapshot["lastUpdateId"]),
                {_scaled(p): _scaled(q) for p, q in self.snapshot["bids"]},
                {_scaled(p): _scaled(q) for p, q in self.snapshot["asks"]},
            )
            self.event_ms = int(self.snapshot.get("E", 0))
            self.transaction_ms = int(self.snapshot.get("T", 0))

    def on_diff(self, event: dict[str, Any], time_ns: int) -> None:
        """Apply one replayed diff with the client rules of spec §3 (the recording has no gaps)."""
        if self.snapshot is None:
            return
        first, final = int(event["U"]), int(event["u"])
        book = self.book
        if not self.synced:
            last = book.last_update_id
            if self.market is Market.FUTURES:
                if final < last or not (first <= last <= final or event.get("pu") == last):
                    return
            elif final <= last or first > last + 1:
                return
            self.synced = True
        for is_bid, levels in ((True, event["b"]), (False, event["a"])):
            for price, quantity in levels:
                book.apply(final, is_bid, _scaled(price), _scaled(quantity))
        book.last_update_id = final
        self.event_ms = int(event.get("E", self.event_ms))
        self.transaction_ms = int(event.get("T", self.event_ms))
        self.update_times.append((time_ns, final))

    def _text(self, value: int, decimals: int) -> str:
        return fixed_text(value // 10 ** (SCALE_DECIMALS - decimals), decimals)

    def body(self, limit: int, stale_before_ns: int | None = None) -> tuple[bytes, bool]:
        """A REST depth body: the recorded snapshot before the replay reaches it, then the own book."""
        if self.snapshot is None or self.snapshot_body is None:
            raise BookUnavailable("no depth snapshot was recorded for this symbol")
        if not self.synced:
            if limit >= max(len(self.snapshot["bids"]), len(self.snapshot["asks"])):
                return self.snapshot_body, False
            trimmed = {**self.snapshot, "bids": self.snapshot["bids"][:limit], "asks": self.snapshot["asks"][:limit]}
            return orjson.dumps(trimmed), False
        book = self.book
        update_id = book.last_update_id
        if stale_before_ns is not None:
            update_id = book.oldest_reachable_id()
            for event_ns, replayed_id in reversed(self.update_times):
                if event_ns <= stale_before_ns:
                    update_id = max(replayed_id, update_id)
                    break
        bid_levels, ask_levels = book.levels_at(update_id)
        bids = [[self._text(p, self.price_decimals), self._text(bid_levels[p], self.quantity_decimals)]
                for p in sorted(bid_levels, reverse=True)[:limit]]  # fmt: skip
        asks = [[self._text(p, self.price_decimals), self._text(ask_levels[p], self.quantity_decimals)]
                for p in sorted(ask_levels)[:limit]]  # fmt: skip
        document: dict[str, Any] = {"lastUpdateId": update_id}
        if self.market is Market.FUTURES:
            document.update(E=self.event_ms, T=self.transaction_ms)
        document.update(bids=bids, asks=asks)
        return orjson.dumps(document), update_id < book.last_update_id

    def view(self, limit: int | None = None) -> BookView:
        if self.snapshot is None:
            raise BookUnavailable("no depth snapshot was recorded for this symbol")
        return self.book.view(_decimal_of, _decimal_of, limit)


def _decimal_of(value: int) -> Any:
    from decimal import Decimal

    return Decimal(fixed_text(value, SCALE_DECIMALS))


def _with_siblings(files: list[Path]) -> list[Path]:
    """cryptofeed `X.ws.N.M` files bring their `X.http.*` snapshot log along."""
    result = list(dict.fromkeys(files))
    for path in files:
        if ".ws." in path.name:
            for sibling in sorted(path.parent.glob(path.name.split(".ws.")[0] + ".http.*")):
                if sibling not in result:
                    result.append(sibling)
    return result


class ReplayMarket:
    """A `MarketSource` that replays recorded frames."""

    def __init__(
        self,
        options: SimulatorOptions,
        publish: Publish,
        subscribed: Subscribed,
        timeline: Timeline,
        data_dir: Path | None,
        frames: Iterable[RawFrame] | None = None,
    ) -> None:
        self.options = options
        self.publish = publish
        self.subscribed = subscribed
        self.timeline = timeline
        self.frames: list[_Frame] = []
        self.books: dict[tuple[Market, str], ReplayBook] = {}
        self.marks: dict[str, dict[str, Any]] = {}
        self._position = 0
        self._started = options.replay_start == "immediately"
        self._depth_names: dict[tuple[Market, str], str] = {}
        self._offset_ns = 0
        self._load(options, data_dir, frames)

    # ---- loading ------------------------------------------------------------------------------
    def _load(self, options: SimulatorOptions, data_dir: Path | None, given: Iterable[RawFrame] | None) -> None:
        files = _with_siblings([Path(path) for path in options.replay_files])
        for path in files:
            if not path.exists():
                raise ConfigurationError(f"{path}: no such file")
        snapshots: dict[tuple[Market, str], bytes] = {}
        offsets: list[int] = []
        sources: list[Iterable[RawFrame]] = [read_raw(path) for path in files]
        if given is not None:
            sources.append(given)
        for frame in merge_by_local_time(iter(source) for source in sources):
            if frame.market is None or frame.market not in options.markets:
                continue
            if frame.kind is FrameKind.SNAPSHOT:
                snapshots.setdefault((frame.market, frame.symbol), frame.payload)
                continue
            self._add_frame(frame, offsets)
        if not self.frames:
            raise ConfigurationError("the replay files hold no stream frame of the selected markets")
        self._offset_ns = int(statistics.median(offsets)) if offsets else 0
        keys = sorted({(frame.market, frame.symbol) for frame in self.frames} | set(snapshots))
        self.books = {key: ReplayBook(key[0], snapshots.get(key), self.options.book_history_updates) for key in keys}
        self._specs = self._make_specs(keys, data_dir)

    def _add_frame(self, frame: RawFrame, offsets: list[int]) -> None:
        parsed = parse_stream(frame.stream, frame.market) if frame.market is not None else None
        kind = parsed.kind if parsed is not None else StreamKind.OTHER
        market = frame.market
        assert market is not None
        if kind is StreamKind.DEPTH:
            self._depth_names.setdefault((market, frame.symbol), frame.stream)
        self.frames.append(_Frame(frame.ts_local_ns, market, frame.symbol, frame.stream, kind, frame.payload))
        if len(offsets) < 200 and b'"E":' in frame.payload:
            event_ms = orjson.loads(frame.payload).get("E")
            if isinstance(event_ms, int):
                offsets.append(event_ms * NANOS_PER_MILLI - frame.ts_local_ns)

    def _make_specs(self, keys: list[tuple[Market, str]], data_dir: Path | None) -> dict[Market, list[SymbolSpec]]:
        catalogs: dict[Market, ExchangeInfoCatalog] = {}
        if data_dir is not None and (data_dir / "exchange_info").is_dir():
            for market in {market for market, _ in keys}:
                catalogs[market] = ExchangeInfoCatalog.load(market, data_dir / "exchange_info")
        self._catalogs = catalogs
        specs: dict[Market, list[SymbolSpec]] = {market: [] for market in self.options.markets}
        for rank, (market, symbol) in enumerate(keys):
            entry = catalogs[market].find(symbol) if market in catalogs else None
            entry = dict(entry) if entry is not None else self._entry_from_recording(market, symbol)
            entry["status"] = "TRADING"
            specs[market].append(spec_from_entry(entry, market, rank))
        return specs

    def _entry_from_recording(self, market: Market, symbol: str) -> dict[str, Any]:
        """An exchangeInfo entry for a symbol no recorded exchangeInfo lists: grid from the decimals seen."""
        book = self.books[(market, symbol)]
        tick = fixed_text(1, book.price_decimals)
        step = fixed_text(1, book.quantity_decimals)
        quote = next((q for q in ("USDT", "USDC", "BUSD", "BTC", "ETH", "BNB", "EUR") if symbol.endswith(q)), "USDT")
        return {
            "symbol": symbol,
            "status": "TRADING",
            "baseAsset": symbol[: -len(quote)],
            "quoteAsset": quote,
            "pricePrecision": book.price_decimals,
            "quantityPrecision": book.quantity_decimals,
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": tick, "maxPrice": "1000000", "tickSize": tick},
                {"filterType": "LOT_SIZE", "minQty": step, "maxQty": "9000000", "stepSize": step},
            ],
        }

    # ---- MarketSource: timeline ---------------------------------------------------------------
    def origin_ns(self) -> int | None:
        return self.frames[0].ts_ns

    def exchange_offset_ns(self) -> int:
        return self._offset_ns

    def start(self, origin_ns: int) -> None:
        self._position = 0

    def finished(self) -> bool:
        return self._position >= len(self.frames)

    def next_event_ns(self) -> int | None:
        if self.finished():
            return None
        if not self._started:
            return self.timeline.now_ns() + 10 * NANOS_PER_MILLI  # poll for the first subscriber
        return self.frames[self._position].ts_ns

    def advance(self, until_ns: int, max_events: int = 1 << 62) -> int:
        if not self._started:
            if not self._ready_to_start():
                return 0
            self._started = True
            self.timeline.rebase(self.frames[self._position].ts_ns)
            until_ns = self.frames[self._position].ts_ns
        fast = self.timeline.as_fast_as_possible
        frames, position, processed = self.frames, self._position, 0
        limit = min(max_events, _FAST_BATCH) if fast else max_events
        while position < len(frames) and (frames[position].ts_ns <= until_ns or fast) and processed < limit:
            frame = frames[position]
            position += 1
            processed += 1
            if frame.kind is StreamKind.DEPTH:
                self.books[(frame.market, frame.symbol)].on_diff(orjson.loads(frame.payload), frame.ts_ns)
            elif frame.kind is StreamKind.MARK_PRICE:
                self.marks[frame.symbol] = orjson.loads(frame.payload)
            self.publish(frame.market, frame.stream, frame.kind, frame.symbol, frame.payload)
            if fast:
                self.timeline.set_position(frame.ts_ns)
        self._position = position
        return processed

    # ---- lockstep (kestrel.sim.lockstep): one frame at a time, in the plan's order -------------
    def publish_now(self, frame: RawFrame) -> bool:
        """Publish one recorded frame at once (books and marks follow it); True when a client has
        subscribed its stream, i.e. when it was sent."""
        market = frame.market
        if market is None or market not in self.options.markets or frame.kind is FrameKind.SNAPSHOT:
            return False
        parsed = parse_stream(frame.stream, market)
        kind = parsed.kind if parsed is not None else StreamKind.OTHER
        if kind is StreamKind.DEPTH:
            self.books[(market, frame.symbol)].on_diff(orjson.loads(frame.payload), frame.ts_local_ns)
        elif kind is StreamKind.MARK_PRICE:
            self.marks[frame.symbol] = orjson.loads(frame.payload)
        self._position = len(self.frames)  # the paced replay is over: lockstep publishes instead
        self.publish(market, frame.stream, kind, frame.symbol, frame.payload)
        return frame.stream in self.subscribed(market)

    def depth_subscribed(self) -> bool:
        """Every recorded diff-depth stream has a subscriber."""
        return all(name in self.subscribed(market) for (market, _), name in self._depth_names.items())

    def _ready_to_start(self) -> bool:
        if self.options.replay_start == "all_depth_subscribed":
            return all(name in self.subscribed(market) for (market, _), name in self._depth_names.items())
        return any(self.subscribed(market) for market in self.options.markets)

    def canonical(self, market: Market, name: str) -> str:
        parsed = parse_stream(name, market)
        if parsed is not None and parsed.kind is StreamKind.DEPTH and parsed.symbol is not None:
            return self._depth_names.get((market, parsed.symbol), name)
        return name

    def set_skew_ns(self, skew_ns: int) -> None:
        """Replayed payloads keep their recorded times; the skew shows in `serverTime` only."""

    # ---- MarketSource: queries ----------------------------------------------------------------
    def specs(self, market: Market) -> list[SymbolSpec]:
        return list(self._specs.get(market, []))

    def exchange_info(self, market: Market, server_time_ms: int) -> dict[str, Any]:
        catalog = self._catalogs.get(market)
        if catalog is None:
            return {"timezone": "UTC", "serverTime": server_time_ms, "rateLimits": [], "symbols": []}
        return exchange_info_document(catalog, self._specs.get(market, []), server_time_ms)

    def _book(self, market: Market, symbol: str) -> ReplayBook:
        book = self.books.get((market, symbol))
        if book is None:
            raise UnknownSymbol(symbol)
        return book

    def depth_snapshot(self, market: Market, symbol: str, limit: int, stale_ms: int) -> tuple[bytes, bool]:
        stale_before = self.timeline.now_ns() - stale_ms * NANOS_PER_MILLI if stale_ms else None
        book = self._book(market, symbol)
        if self.options.replay_full_depth_snapshots and book.synced:
            limit = max(len(book.book.bids), len(book.book.asks))
        return book.body(limit, stale_before)

    def book_view(self, market: Market, symbol: str, limit: int | None = None) -> BookView:
        return self._book(market, symbol).view(limit)

    def book_view_at(self, market: Market, symbol: str, update_id: int) -> BookView:
        return self._book(market, symbol).book.view_at(update_id, _decimal_of, _decimal_of)

    def klines(
        self, market: Market, symbol: str, interval: str, start_ms: int | None, end_ms: int | None, limit: int
    ) -> list[list[object]]:
        self._book(market, symbol)
        return []

    def agg_trades(self, market: Market, symbol: str) -> list[dict[str, object]]:
        self._book(market, symbol)
        return []

    def premium_index(self, symbol: str | None) -> list[dict[str, object]]:
        if symbol is not None:
            self._book(Market.FUTURES, symbol)
        rows = []
        for name, mark in sorted(self.marks.items()):
            if symbol is None or name == symbol:
                rows.append(
                    {
                        "symbol": name,
                        "markPrice": mark.get("p"),
                        "indexPrice": mark.get("i"),
                        "estimatedSettlePrice": mark.get("P"),
                        "lastFundingRate": mark.get("r"),
                        "interestRate": "0.00010000",
                        "nextFundingTime": mark.get("T"),
                        "time": mark.get("E"),
                    }
                )
        return rows

    def open_interest(self, symbol: str) -> dict[str, object]:
        self._book(Market.FUTURES, symbol)
        raise BookUnavailable("open interest is not in the recording")

    def funding_rates(self, symbol: str | None) -> list[dict[str, object]]:
        if symbol is not None:
            self._book(Market.FUTURES, symbol)
        return []
