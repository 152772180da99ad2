"""`kestrel demo`: the system on its embedded defaults.

What exists today is exercised end to end on real Binance data from ../shared when it is present
(a seeded synthetic market otherwise): configuration → instrument registry from recorded exchangeInfo
→ recorded klines replayed as events on the bus under the simulated clock → a moving-average observer
turning crossovers into exchange-valid order sizes. Later parts (simulator, node, paper trading) plug
in here as they land; the summary says what ran.
"""

from __future__ import annotations

import json
import random
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from kestrel.binance.schemas.exchange_info import parse_exchange_info, select_tradable_usdt
from kestrel.config.loading import config_revision, embedded_defaults, secret_values
from kestrel.config.paths import shared_data_dir
from kestrel.core.bus import MessageBus
from kestrel.core.clock import SimClock
from kestrel.core.enums import Market, Side
from kestrel.core.errors import InvalidOrderError
from kestrel.core.events import NANOS_PER_MILLI, Kline
from kestrel.core.instrument import Instrument
from kestrel.core.logs import configure_logging, get_logger, register_secrets

HOUR_NS = 3_600 * 1_000_000_000
KLINES_FILE = "freqtrade_userdata_roshan7869/futures/BTC_USDT_USDT-1h-futures.feather"
EXCHANGE_INFO_FILES = {
    Market.FUTURES: "exchange_info/usdm_exchangeInfo_2025-03-06_baouih.json",
    Market.SPOT: "exchange_info/spot_exchangeInfo_2024-09-08_TRADING-only_robo-investimentos.json",
}


@dataclass
class CrossoverObserver:
    """Counts SMA(fast) / SMA(slow) crossovers and sizes a 20 USDT × 5 margin order at each."""

    instrument: Instrument
    fast: int = 12
    slow: int = 48
    margin_usdt: Decimal = Decimal(20)
    leverage: int = 10
    closes: deque[float] = field(default_factory=deque)
    last_sign: int = 0
    crossovers: int = 0
    sized_orders: list[tuple[int, Side, Decimal, Decimal]] = field(default_factory=list)
    rejected: int = 0

    def on_kline(self, kline: Kline) -> None:
        self.closes.append(kline.close)
        if len(self.closes) > self.slow:
            self.closes.popleft()
        if len(self.closes) < self.slow:
            return
        fast = sum(list(self.closes)[-self.fast :]) / self.fast
        slow = sum(self.closes) / self.slow
        sign = 1 if fast > slow else -1 if fast < slow else 0
        if sign and self.last_sign and sign != self.last_sign:
            self.crossovers += 1
            side = Side.BUY if sign > 0 else Side.SELL
            try:
                price = self.instrument.round_price(kline.close)
                qty = self.instrument.quantity_for_notional(self.margin_usdt * self.leverage, price)
                self.sized_orders.append((kline.ts_event, side, price, qty))
            except InvalidOrderError:
                self.rejected += 1
        if sign:
            self.last_sign = sign


def _real_klines(path: Path) -> Iterator[Kline]:
    import pyarrow.feather as feather

    table = feather.read_table(path)
    opens = table.column("date").cast("int64").to_pylist()  # ms since epoch
    columns = {name: table.column(name).to_pylist() for name in ("open", "high", "low", "close", "volume")}
    for index, open_ms in enumerate(opens):
        open_ns = open_ms * NANOS_PER_MILLI
        close_ns = open_ns + HOUR_NS - 1
        yield Kline(
            Market.FUTURES, "BTCUSDT", "1h", open_ns, close_ns,
            columns["open"][index], columns["high"][index], columns["low"][index], columns["close"][index],
            columns["volume"][index], 0.0, 0, 0.0, 0.0, True, close_ns, close_ns,
        )  # fmt: skip


def _synthetic_klines(seed: int, count: int = 5_000) -> Iterator[Kline]:
    rng = random.Random(seed)
    price = 30_000.0
    start_ns = 1_700_000_000_000 * NANOS_PER_MILLI
    for index in range(count):
        open_price = price
        price *= 1.0 + rng.gauss(0.0, 0.004)
        high, low = max(open_price, price) * 1.001, min(open_price, price) * 0.999
        open_ns = start_ns + index * HOUR_NS
        close_ns = open_ns + HOUR_NS - 1
        yield Kline(
            Market.FUTURES, "BTCUSDT", "1h", open_ns, close_ns, open_price, high, low, price,
            10.0, 0.0, 0, 0.0, 0.0, True, close_ns, close_ns,
        )  # fmt: skip


def _fallback_instrument() -> Instrument:
    from kestrel.core.identifiers import Symbol
    from kestrel.core.instrument import GridFilter, NotionalFilter

    return Instrument(
        Symbol("BTCUSDT"), Market.FUTURES, "BTC", "USDT",
        GridFilter("PRICE_FILTER", Decimal("261.10"), Decimal("809484"), Decimal("0.10")),
        GridFilter("LOT_SIZE", Decimal("0.001"), Decimal("1000"), Decimal("0.001")),
        notional=NotionalFilter("MIN_NOTIONAL", Decimal("100")), contract_type="PERPETUAL", margin_asset="USDT",
    )  # fmt: skip


def run_demo(duration_s: float = 0.0) -> dict[str, object]:
    """Run and print a summary; returns it too (tests read it)."""
    config = embedded_defaults()
    register_secrets(secret_values(config))
    configure_logging(config.logging.level, config.logging.format)
    log = get_logger(__name__)
    shared = shared_data_dir()
    summary: dict[str, object] = {"config_revision": config_revision(config), "venue": config.venue.name}

    registry: dict[str, Instrument] = {}
    if shared is not None:
        for market, relative in EXCHANGE_INFO_FILES.items():
            payload = json.loads((shared / relative).read_text(encoding="utf-8"))
            for instrument in select_tradable_usdt(parse_exchange_info(payload, market)):
                registry[instrument.key] = instrument
    summary["instruments"] = {
        market.value: sum(1 for i in registry.values() if i.market is market) for market in Market
    }
    btc = registry.get("futures:BTCUSDT") or _fallback_instrument()

    bus = MessageBus()
    observer = CrossoverObserver(
        btc, margin_usdt=Decimal(str(config.execution.base_margin_usdt)), leverage=config.risk.leverage
    )
    bus.subscribe("data.kline.*", observer.on_kline)
    klines_path = shared / KLINES_FILE if shared is not None else None
    source = "real BTCUSDT 1h futures klines" if klines_path and klines_path.exists() else "synthetic klines"
    klines = _real_klines(klines_path) if klines_path and klines_path.exists() else _synthetic_klines(config.seed)

    clock: SimClock | None = None
    events = 0
    stop_ns: int | None = None
    for kline in klines:
        if clock is None:
            clock = SimClock(kline.ts_event)
            if duration_s > 0:
                stop_ns = kline.ts_event + int(duration_s * 1e9)
        if stop_ns is not None and kline.ts_event > stop_ns:
            break
        clock.advance_to(kline.ts_event)
        bus.publish(f"data.kline.{kline.market.value}.{kline.symbol}", kline)
        events += 1
    summary.update(
        {
            "market_data": source,
            "events_replayed": events,
            "crossovers": observer.crossovers,
            "orders_sized": len(observer.sized_orders),
            "orders_below_exchange_minimums": observer.rejected,
        }
    )
    if observer.sized_orders:
        _, side, price, qty = observer.sized_orders[-1]
        summary["last_order"] = f"{side.value} {qty} BTCUSDT @ {price}"
    log.info("demo finished", **{k: str(v) for k, v in summary.items()})
    print("Kestrel demo — what ran:")
    print(f"  configuration: embedded defaults, revision {summary['config_revision']}, venue {config.venue.name}")
    print(f"  instrument registry: {summary['instruments']} TRADING USDT symbols from recorded exchangeInfo")
    print(f"  replayed {events} {source} through the simulated clock and the message bus")
    print(
        f"  SMA crossover observer: {observer.crossovers} crossovers, {len(observer.sized_orders)} orders sized "
        f"to exchange filters, {observer.rejected} below minimums"
    )
    if "last_order" in summary:
        print(f"  last sized order: {summary['last_order']}")
    print("  not yet built: local Binance simulator, matching engine, paper trading node (open issues)")
    return summary
