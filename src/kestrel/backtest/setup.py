"""From what the user asks for (strategy, data, symbols, window, seed, configuration) to a runnable setup.

Data files are recognised by name: raw recordings (hftbacktest `*.gz` / `*.dat.gz`, cryptofeed `*.ws.*`
and `*.http.*`) give L2 events; freqtrade feather files give candles (matched in bar mode), mark-price
candles and funding rates. Every random generator is seeded from `seed` and the name of its stream, so
the same request always builds the same run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kestrel.backtest.data import (
    EXCHANGE_INFO_FILES,
    INTERVAL_NS,
    candles_to_klines,
    load_instruments,
    marks_from_klines,
    parse_feather_name,
    read_candles,
    read_funding,
    read_marks,
    read_recording,
)
from kestrel.backtest.driver import BacktestSetup
from kestrel.config.loading import masked_dict
from kestrel.config.models import KestrelConfig
from kestrel.config.paths import shared_data_dir
from kestrel.core.enums import Market
from kestrel.core.errors import ConfigurationError, DataError
from kestrel.core.events import Kline, MarketEvent
from kestrel.core.instrument import Instrument
from kestrel.matching.latency import (
    ConstantLatency,
    OrderLatency,
)
from kestrel.matching.rows import TableBuilder
from kestrel.matching.settings import build_latency, engine_settings
from kestrel.strategy.loading import load_strategy

RAW_SUFFIXES = (".gz", ".dat")


@dataclass(slots=True)
class BacktestRequest:
    strategy: str
    data: Sequence[Path]
    config: KestrelConfig
    symbols: Sequence[str] = ()
    params: Mapping[str, str] = field(default_factory=dict)
    start_ns: int | None = None
    end_ns: int | None = None
    seed: int | None = None
    exchange_info: Mapping[Market, Path] = field(default_factory=dict)


@dataclass(slots=True)
class PreparedRun:
    setup: BacktestSetup
    data_files: list[Path]
    params: dict[str, Any]


def _exchange_info(market: Market, given: Mapping[Market, Path]) -> Path:
    if market in given:
        return given[market]
    shared = shared_data_dir()
    if shared is None:
        raise ConfigurationError(
            f"no exchangeInfo for {market.value}: pass --exchange-info (../shared is not available)"
        )
    return shared / EXCHANGE_INFO_FILES[market]


def _in_window(ts: int, request: BacktestRequest) -> bool:
    return (request.start_ns is None or ts >= request.start_ns) and (request.end_ns is None or ts < request.end_ns)


@dataclass(slots=True)
class _Loaded:
    events: list[MarketEvent] = field(default_factory=list)
    symbols: dict[tuple[Market, str], str] = field(default_factory=dict)  # -> "l2" | "bar"
    bar_interval_ns: int = 0
    without_snapshot: bool = False
    has_marks: set[str] = field(default_factory=set)
    klines: list[Kline] = field(default_factory=list)


def _load(request: BacktestRequest, files: list[Path]) -> _Loaded:
    loaded = _Loaded()
    wanted = {s.upper() for s in request.symbols}
    for path in files:
        if path.suffix == ".feather":
            name = parse_feather_name(path)
            if wanted and name.symbol not in wanted:
                continue
            if name.kind == "funding_rate":
                loaded.events += [e for e in read_funding(path, name.symbol) if _in_window(e.ts_event, request)]
            elif name.kind == "mark":
                loaded.events += [e for e in read_marks(path, name.symbol) if _in_window(e.ts_event, request)]
                loaded.has_marks.add(name.symbol)
            else:
                candles = read_candles(path).window(request.start_ns, request.end_ns)
                klines = candles_to_klines(candles, name.market, name.symbol, name.interval)
                loaded.klines += klines
                loaded.events += klines
                loaded.symbols[(name.market, name.symbol)] = "bar"
                loaded.bar_interval_ns = max(loaded.bar_interval_ns, INTERVAL_NS[name.interval] * 1_000_000_000)
        else:
            events = [
                e
                for e in read_recording(path)
                if (not wanted or e.symbol in wanted) and _in_window(e.ts_event, request)
            ]
            if events and not any(type(e).__name__ == "DepthSnapshot" for e in events):
                loaded.without_snapshot = True
            loaded.events += events
            for event in events:
                loaded.symbols.setdefault((event.market, event.symbol), "l2")
    if not loaded.events:
        raise DataError("no market data in the given files for these symbols and dates")
    return loaded


def _data_files(paths: Sequence[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if not path.exists():
            raise DataError(f"{path}: no such file or directory")
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix == ".feather" or p.name.endswith(RAW_SUFFIXES))
        else:
            files.append(path)
    if not files:
        raise DataError("no data files found")
    return files


def prepare(request: BacktestRequest) -> PreparedRun:
    config = request.config
    seed = request.seed if request.seed is not None else config.seed
    strategy = load_strategy(request.strategy, request.params)
    files = _data_files(request.data)
    loaded = _load(request, files)
    instruments: list[Instrument] = []
    for market in (Market.FUTURES, Market.SPOT):
        symbols = sorted(s for (m, s) in loaded.symbols if m is market)
        if symbols:
            instruments += load_instruments(market, symbols, _exchange_info(market, request.exchange_info))
    bar_symbols = frozenset(key for key, kind in loaded.symbols.items() if kind == "bar")
    for (market, symbol), kind in loaded.symbols.items():
        if kind == "bar" and market is Market.FUTURES and symbol not in loaded.has_marks:
            loaded.events += marks_from_klines([k for k in loaded.klines if k.symbol == symbol and k.market is market])
    builder = TableBuilder(
        instruments,
        require_snapshot=config.backtest.require_snapshot and not loaded.without_snapshot,
        bar_symbols=bar_symbols,
    )
    if any(kind == "bar" for kind in loaded.symbols.values()) and all(
        kind == "bar" for kind in loaded.symbols.values()
    ):
        ordered = sorted(loaded.events, key=lambda e: e.ts_event)  # candle files: no arrival order to keep
    else:
        ordered = loaded.events
    builder.add_all(ordered)
    matching = config.matching
    feed = matching.feed_latency
    bars_only = bool(bar_symbols) and len(bar_symbols) == len(loaded.symbols)
    if bars_only:
        table = builder.build(None)
        bar_latency = ConstantLatency(round(config.backtest.bar_order_latency_ms * 1_000_000))
        order_latency = OrderLatency(bar_latency, bar_latency)
    else:
        recorded = feed.model == "recorded"
        table = builder.build(None if recorded else build_latency(feed, seed, "feed"), recorded=recorded)
        order_latency = OrderLatency(
            build_latency(matching.order_entry_latency, seed, "order_entry", 0),
            build_latency(matching.order_response_latency, seed, "order_response", 1),
        )
    if len(table) == 0:
        raise DataError("the data gave no usable market events (no snapshot? try backtest.require_snapshot: false)")
    interval_ns = max(round(config.backtest.equity_interval_s * 1e9), loaded.bar_interval_ns)
    markets = {market for market, _ in loaded.symbols}
    settings = engine_settings(matching)
    setup = BacktestSetup(
        instruments=instruments,
        table=table,
        strategy=strategy,
        settings=settings,
        order_latency=order_latency,
        spot_balances=dict(config.backtest.spot_balances) if Market.SPOT in markets else {},
        futures_balances=dict(config.backtest.futures_balances) if Market.FUTURES in markets else {},
        bar_symbols=bar_symbols,
        equity_interval_ns=interval_ns,
    )
    params: dict[str, Any] = {
        "strategy": request.strategy,
        "strategy_class": f"{type(strategy).__module__}:{type(strategy).__name__}",
        "strategy_params": {k: str(v) for k, v in strategy.params.items()},
        "symbols": sorted(f"{m.value}:{s}" for (m, s) in loaded.symbols),
        "bar_mode": sorted(f"{m.value}:{s}" for (m, s) in bar_symbols),
        "from_ns": request.start_ns,
        "to_ns": request.end_ns,
        "seed": seed,
        "feed_latency": "none (bars)"
        if bars_only
        else ("recorded" if feed.model == "recorded" else build_latency(feed, seed, "feed").describe()),
        "order_latency": order_latency.describe(),
        "queue_model": f"{settings.queue_model} (n={settings.queue_power})",
        "fees": settings.fees.describe(),
        "spot_balances": {k: str(v) for k, v in setup.spot_balances.items()},
        "futures_balances": {k: str(v) for k, v in setup.futures_balances.items()},
        "rows": len(table),
        "book_gaps": table.gaps,
        "config": masked_dict(config),
    }
    return PreparedRun(setup, files, params)
