"""The simulator's symbols: real exchangeInfo entries (filters as Binance published them) and wire formatting.

Symbols come from the recorded exchangeInfo files in ../shared/data/binance/exchange_info/ (spot
2024-09-08, USD-M 2025-03-06, then the 2021 files for older symbols such as those of the cryptofeed
recordings). A load test may ask for more symbols than the files list: the extra ones get generated
names (``SIM0001USDT`` ...) and a copy of a real symbol's filters, cycling through the real list so the
tick/step variety stays realistic.

Prices and quantities are integers on the simulator's hot path (ticks of `tickSize`, lots of
`stepSize`); `SymbolSpec.price_text` / `quantity_text` turn them into the exact wire strings. Spot
prints every price and quantity with 8 decimals ("67812.01000000"); USD-M prints `pricePrecision` /
`quantityPrecision` decimals ("67790.40", "0.350"), as the recordings show.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from kestrel.core.enums import Market
from kestrel.core.errors import ConfigurationError, DataError

SPOT_WIRE_DECIMALS = 8

# Newest first: a symbol is taken from the first file that lists it.
EXCHANGE_INFO_FILES: dict[Market, tuple[str, ...]] = {
    Market.SPOT: (
        "spot_exchangeInfo_2024-09-08_TRADING-only_robo-investimentos.json",
        "spot_exchangeInfo_2021-10-12_cryptofeed.json",
    ),
    Market.FUTURES: (
        "usdm_exchangeInfo_2025-03-06_baouih.json",
        "usdm_exchangeInfo_2021-07-22_cryptofeed.json",
    ),
}


def fixed_text(value: int, decimals: int) -> str:
    """`value` × 10^-decimals as a plain decimal string with exactly `decimals` digits after the point."""
    if decimals == 0:
        return str(value)
    sign = ""
    if value < 0:
        sign, value = "-", -value
    whole, fraction = divmod(value, 10**decimals)
    return f"{sign}{whole}.{fraction:0{decimals}d}"


def _decimals_of(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _scaled(value: Decimal, decimals: int) -> int:
    scaled = value.scaleb(decimals)
    if scaled != scaled.to_integral_value():
        raise DataError(f"{value} has more than {decimals} decimals")
    return int(scaled)


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    """One simulated symbol: its exchangeInfo entry and the integer grid the simulator works on."""

    market: Market
    symbol: str  # upper case, as in payloads
    rank: int  # 0 = most active (drives the synthetic rates)
    tick_size: Decimal
    step_size: Decimal
    min_price: Decimal
    max_price: Decimal
    min_quantity: Decimal
    price_decimals: int  # digits printed on the wire
    quantity_decimals: int
    entry: dict[str, Any] = field(repr=False, compare=False, hash=False)  # the exchangeInfo `symbols[]` item
    tick_scaled: int = field(init=False, repr=False, compare=False)  # tick × 10^price_decimals
    step_scaled: int = field(init=False, repr=False, compare=False)  # step × 10^quantity_decimals
    # prices repeat (levels near the top change again and again): their wire text is cached
    _price_texts: dict[int, str] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tick_scaled", _scaled(self.tick_size, self.price_decimals))
        object.__setattr__(self, "step_scaled", _scaled(self.step_size, self.quantity_decimals))
        object.__setattr__(self, "_price_texts", {})

    @property
    def stream_symbol(self) -> str:
        """Lower case, as stream names spell it."""
        return self.symbol.lower()

    @property
    def key(self) -> str:
        """``futures:BTCUSDT`` (the same key as `Instrument.key`)."""
        return f"{self.market.value}:{self.symbol}"

    def price_text(self, ticks: int) -> str:
        texts = self._price_texts
        text = texts.get(ticks)
        if text is None:
            if len(texts) > 50_000:
                texts.clear()
            text = texts[ticks] = fixed_text(ticks * self.tick_scaled, self.price_decimals)
        return text

    def quantity_text(self, lots: int) -> str:
        return fixed_text(lots * self.step_scaled, self.quantity_decimals)

    def price(self, ticks: int) -> Decimal:
        return Decimal(self.price_text(ticks))

    def quantity(self, lots: int) -> Decimal:
        return Decimal(self.quantity_text(lots))

    def ticks_of(self, price: Decimal) -> int:
        return int(price / self.tick_size)

    def lots_of(self, quantity: Decimal) -> int:
        return int(quantity / self.step_size)


def _filters(entry: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {str(item.get("filterType")): item for item in entry.get("filters", [])}


def spec_from_entry(entry: dict[str, Any], market: Market, rank: int) -> SymbolSpec:
    """A SymbolSpec from one exchangeInfo `symbols[]` item. Raises DataError without PRICE_FILTER/LOT_SIZE."""
    filters = _filters(entry)
    if "PRICE_FILTER" not in filters or "LOT_SIZE" not in filters:
        raise DataError(f"exchangeInfo: {entry.get('symbol')} lacks PRICE_FILTER or LOT_SIZE")
    price_filter, lot_size = filters["PRICE_FILTER"], filters["LOT_SIZE"]
    tick = Decimal(str(price_filter["tickSize"]))
    step = Decimal(str(lot_size["stepSize"]))
    if tick <= 0 or step <= 0:
        raise DataError(f"exchangeInfo: {entry.get('symbol')} has a zero tick or step")
    if market is Market.SPOT:
        price_decimals = quantity_decimals = SPOT_WIRE_DECIMALS
    else:
        price_decimals = max(int(entry.get("pricePrecision", 0)), _decimals_of(tick))
        quantity_decimals = max(int(entry.get("quantityPrecision", 0)), _decimals_of(step))
    return SymbolSpec(
        market=market,
        symbol=str(entry["symbol"]),
        rank=rank,
        tick_size=tick,
        step_size=step,
        min_price=Decimal(str(price_filter.get("minPrice", "0"))),
        max_price=Decimal(str(price_filter.get("maxPrice", "0"))),
        min_quantity=Decimal(str(lot_size.get("minQty", "0"))),
        price_decimals=price_decimals,
        quantity_decimals=quantity_decimals,
        entry=entry,
    )


def _is_simulated_kind(entry: dict[str, Any], market: Market) -> bool:
    """TRADING, USDT-quoted; on futures only perpetuals (what R-MD-1 discovers)."""
    if entry.get("status") != "TRADING" or entry.get("quoteAsset") != "USDT":
        return False
    return market is Market.SPOT or entry.get("contractType") == "PERPETUAL"


@dataclass(slots=True)
class ExchangeInfoCatalog:
    """The recorded exchangeInfo documents of one market, newest first."""

    market: Market
    documents: list[dict[str, Any]]

    @classmethod
    def load(cls, market: Market, directory: Path) -> ExchangeInfoCatalog:
        documents = []
        for name in EXCHANGE_INFO_FILES[market]:
            path = directory / name
            if path.exists():
                documents.append(orjson.loads(path.read_bytes()))
        if not documents:
            raise ConfigurationError(f"{directory}: no recorded {market.value} exchangeInfo file found")
        return cls(market, documents)

    @property
    def newest(self) -> dict[str, Any]:
        return self.documents[0]

    def find(self, symbol: str) -> dict[str, Any] | None:
        for document in self.documents:
            for entry in document.get("symbols", []):
                if entry.get("symbol") == symbol:
                    return dict(entry)
        return None

    def tradable_entries(self) -> list[dict[str, Any]]:
        """TRADING USDT symbols of the newest document, in its order (majors first)."""
        return [entry for entry in self.newest.get("symbols", []) if _is_simulated_kind(entry, self.market)]


def _generated_entry(template: dict[str, Any], number: int) -> dict[str, Any]:
    entry = copy.deepcopy(template)
    base = f"SIM{number:04d}"
    entry["symbol"] = f"{base}USDT"
    entry["baseAsset"] = base
    if "pair" in entry:
        entry["pair"] = f"{base}USDT"
    entry["status"] = "TRADING"
    return entry


def select_specs(catalog: ExchangeInfoCatalog, symbols: int | list[str]) -> list[SymbolSpec]:
    """`symbols` = a count (the first N tradable USDT symbols, then generated names) or explicit names."""
    market = catalog.market
    if isinstance(symbols, int):
        entries = catalog.tradable_entries()
        if not entries:
            raise ConfigurationError(f"the recorded {market.value} exchangeInfo lists no TRADING USDT symbol")
        chosen = [copy.deepcopy(entry) for entry in entries[:symbols]]
        extra = symbols - len(chosen)
        chosen.extend(_generated_entry(entries[(number - 1) % len(entries)], number) for number in range(1, extra + 1))
        return [spec_from_entry(entry, market, rank) for rank, entry in enumerate(chosen)]
    return [_named_spec(catalog, name, rank) for rank, name in enumerate(symbols)]


def _named_spec(catalog: ExchangeInfoCatalog, name: str, rank: int) -> SymbolSpec:
    entry = catalog.find(name.upper())
    if entry is None:
        raise ConfigurationError(
            f"unknown {catalog.market.value} symbol {name!r}: not in the recorded exchangeInfo "
            "(give a count, e.g. --symbols 300, for generated names)"
        )
    entry = copy.deepcopy(entry)
    entry["status"] = "TRADING"
    return spec_from_entry(entry, catalog.market, rank)


def exchange_info_document(
    catalog: ExchangeInfoCatalog, specs: list[SymbolSpec], server_time_ms: int
) -> dict[str, Any]:
    """The exchangeInfo response: the newest recorded document's top level with the simulated symbols."""
    document = {key: value for key, value in catalog.newest.items() if key != "symbols"}
    document["serverTime"] = server_time_ms
    document["symbols"] = [spec.entry for spec in specs]
    return document
