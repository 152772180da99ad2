"""exchangeInfo (spot `GET /api/v3/exchangeInfo`, futures `GET /fapi/v1/exchangeInfo`) → Instrument."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from kestrel.core.enums import InstrumentStatus, Market
from kestrel.core.errors import DataError
from kestrel.core.identifiers import Symbol
from kestrel.core.instrument import GridFilter, Instrument, NotionalFilter, PercentPriceFilter


def _decimal(payload: Mapping[str, Any], key: str, default: str = "0") -> Decimal:
    raw = payload.get(key, default)
    try:
        return Decimal(str(raw))
    except ArithmeticError:
        raise DataError(f"exchangeInfo: {key}={raw!r} is not a number") from None


def _grid(name: str, payload: Mapping[str, Any], minimum: str, maximum: str, step: str) -> GridFilter:
    return GridFilter(name, _decimal(payload, minimum), _decimal(payload, maximum), _decimal(payload, step))


def _status(raw: str) -> InstrumentStatus:
    try:
        return InstrumentStatus(raw)
    except ValueError:
        return InstrumentStatus.HALT  # an unknown status must never count as tradable


def parse_instrument(payload: Mapping[str, Any], market: Market) -> Instrument:
    """One entry of `symbols[]` into an Instrument. Raises DataError when PRICE_FILTER or LOT_SIZE is missing."""
    symbol = str(payload.get("symbol", ""))
    if not symbol:
        raise DataError("exchangeInfo: symbol entry without a 'symbol'")
    filters = {str(f.get("filterType")): f for f in payload.get("filters", [])}
    if "PRICE_FILTER" not in filters or "LOT_SIZE" not in filters:
        raise DataError(f"exchangeInfo: {symbol} lacks PRICE_FILTER or LOT_SIZE")
    price_filter = _grid("PRICE_FILTER", filters["PRICE_FILTER"], "minPrice", "maxPrice", "tickSize")
    lot_size = _grid("LOT_SIZE", filters["LOT_SIZE"], "minQty", "maxQty", "stepSize")
    market_lot = None
    if "MARKET_LOT_SIZE" in filters:
        market_lot = _grid("MARKET_LOT_SIZE", filters["MARKET_LOT_SIZE"], "minQty", "maxQty", "stepSize")
    notional: NotionalFilter | None = None
    if market is Market.FUTURES and "MIN_NOTIONAL" in filters:
        notional = NotionalFilter("MIN_NOTIONAL", _decimal(filters["MIN_NOTIONAL"], "notional"))
    elif "NOTIONAL" in filters:
        rule = filters["NOTIONAL"]
        maximum = _decimal(rule, "maxNotional")
        notional = NotionalFilter(
            "NOTIONAL",
            _decimal(rule, "minNotional"),
            maximum if maximum != 0 else None,
            bool(rule.get("applyMinToMarket", True)),
            bool(rule.get("applyMaxToMarket", False)),
        )
    elif "MIN_NOTIONAL" in filters:
        rule = filters["MIN_NOTIONAL"]
        notional = NotionalFilter(
            "MIN_NOTIONAL", _decimal(rule, "minNotional"), None, bool(rule.get("applyToMarket", True))
        )
    percent = None
    if "PERCENT_PRICE" in filters:
        rule = filters["PERCENT_PRICE"]
        percent = PercentPriceFilter(_decimal(rule, "multiplierUp"), _decimal(rule, "multiplierDown"))
    max_orders = None
    if "MAX_NUM_ORDERS" in filters:
        rule = filters["MAX_NUM_ORDERS"]
        max_orders = int(rule.get("maxNumOrders", rule.get("limit", 0))) or None
    liquidation_fee = payload.get("liquidationFee")
    return Instrument(
        symbol=Symbol(symbol),
        market=market,
        base_asset=str(payload.get("baseAsset", "")),
        quote_asset=str(payload.get("quoteAsset", "")),
        price_filter=price_filter,
        lot_size=lot_size,
        market_lot_size=market_lot,
        notional=notional,
        percent_price=percent,
        status=_status(str(payload.get("status", "TRADING"))),
        margin_asset=payload.get("marginAsset"),
        contract_type=payload.get("contractType"),
        order_types=frozenset(str(t) for t in payload.get("orderTypes", [])),
        max_num_orders=max_orders,
        liquidation_fee_rate=Decimal(str(liquidation_fee)) if liquidation_fee is not None else None,
    )


def parse_exchange_info(payload: Mapping[str, Any], market: Market) -> list[Instrument]:
    """Every symbol of an exchangeInfo response; entries lacking price/lot filters are skipped."""
    symbols: Iterable[Mapping[str, Any]] = payload.get("symbols", [])
    instruments = []
    for entry in symbols:
        try:
            instruments.append(parse_instrument(entry, market))
        except DataError:
            continue
    return instruments


def is_usdt_perpetual(instrument: Instrument) -> bool:
    return (
        instrument.market is Market.FUTURES
        and instrument.quote_asset == "USDT"
        and instrument.contract_type == "PERPETUAL"
    )


def select_tradable_usdt(instruments: Iterable[Instrument]) -> list[Instrument]:
    """R-MD-1: TRADING, USDT-quoted spot symbols and USDT-M perpetuals."""
    return [
        i
        for i in instruments
        if i.is_trading and i.quote_asset == "USDT" and (i.market is Market.SPOT or is_usdt_perpetual(i))
    ]
