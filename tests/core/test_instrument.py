"""Rounding helpers, property-tested on the real filters of every recorded exchangeInfo file."""

from __future__ import annotations

import json
from decimal import Decimal
from functools import cache
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kestrel.binance.schemas.exchange_info import parse_exchange_info
from kestrel.config.paths import shared_data_dir
from kestrel.core.enums import Market, OrderType
from kestrel.core.errors import InvalidOrderError
from kestrel.core.instrument import Instrument, Rounding

FILES = {
    "spot_exchangeInfo_2021-10-12_cryptofeed.json": Market.SPOT,
    "spot_exchangeInfo_2024-09-08_TRADING-only_robo-investimentos.json": Market.SPOT,
    "spot_exchangeInfo_BTCUSDT_2025-08-23_reserialized_jading-go.json": Market.SPOT,
    "usdm_exchangeInfo_2021-07-22_cryptofeed.json": Market.FUTURES,
    "usdm_exchangeInfo_2025-03-06_baouih.json": Market.FUTURES,
}


@cache
def real_instruments() -> tuple[Instrument, ...]:
    root = shared_data_dir()
    if root is None:
        return ()
    found: list[Instrument] = []
    for name, market in FILES.items():
        payload = json.loads((root / "exchange_info" / name).read_text())
        found.extend(parse_exchange_info(payload, market))
    return tuple(found)


def newest(symbol: str, market: Market) -> Instrument:
    """The instrument from the newest file that lists it (the files are ordered oldest first)."""
    return [i for i in real_instruments() if i.symbol == symbol and i.market is market][-1]


def _instruments() -> tuple[Instrument, ...]:
    instruments = real_instruments()
    if not instruments:
        pytest.skip("shared exchangeInfo files not present")
    return instruments


def test_every_recorded_file_parses(shared_data: Path) -> None:
    instruments = real_instruments()
    markets = {i.market for i in instruments}
    assert markets == {Market.SPOT, Market.FUTURES}
    assert len(instruments) > 2000
    btc = next(i for i in instruments if i.symbol == "BTCUSDT" and i.market is Market.FUTURES)
    assert btc.tick_size > 0 and btc.step_size > 0
    assert btc.notional is not None and btc.notional.minimum > 0


instrument_index = st.integers(min_value=0, max_value=10**9)
# magnitudes spanning the whole useful range of prices and quantities, as decimal strings
decimal_values = st.decimals(
    min_value=Decimal("0.00000001"),
    max_value=Decimal("10000000"),
    allow_nan=False,
    allow_infinity=False,
    places=8,
)
float_values = st.floats(min_value=1e-8, max_value=1e7, allow_nan=False, allow_infinity=False)


def _pick(index: int) -> Instrument:
    instruments = _instruments()
    return instruments[index % len(instruments)]


def _exact_multiple(value: Decimal, step: Decimal, anchor: Decimal) -> bool:
    return step == 0 or (value - anchor) % step == 0


@settings(max_examples=600, deadline=None)
@given(instrument_index, st.one_of(decimal_values, float_values), st.sampled_from(list(Rounding)))
def test_round_price_is_exact_multiple_of_tick_or_clear_error(index: int, raw: object, rounding: Rounding) -> None:
    instrument = _pick(index)
    rule = instrument.price_filter
    try:
        price = instrument.round_price(raw, rounding)  # type: ignore[arg-type]
    except InvalidOrderError as error:
        assert "PRICE_FILTER" in str(error)
        assert error.code is not None
        return
    anchor = rule.minimum if instrument.market is Market.FUTURES else Decimal(0)
    assert _exact_multiple(price, rule.step, anchor)
    assert rule.minimum == 0 or price >= rule.minimum
    assert rule.maximum == 0 or price <= rule.maximum
    # no float artefacts: never more decimal places than the tick has
    if rule.step != 0:
        assert -price.as_tuple().exponent <= max(
            0, -rule.step.normalize().as_tuple().exponent, -rule.step.as_tuple().exponent
        )  # type: ignore[operator]
    # rounding never moves by a full tick or more
    assert abs(price - Decimal(repr(raw) if isinstance(raw, float) else raw)) < rule.step or rule.step == 0  # type: ignore[arg-type]


@settings(max_examples=600, deadline=None)
@given(
    instrument_index,
    st.one_of(decimal_values, float_values),
    st.sampled_from([OrderType.LIMIT, OrderType.MARKET]),
)
def test_round_quantity_never_below_min_without_error(index: int, raw: object, order_type: OrderType) -> None:
    instrument = _pick(index)
    lot = instrument.lot_filter(order_type)
    try:
        quantity = instrument.round_quantity(raw, order_type)  # type: ignore[arg-type]
    except InvalidOrderError as error:
        assert lot.name in str(error)
        return
    anchor = lot.minimum if instrument.market is Market.FUTURES else Decimal(0)
    assert _exact_multiple(quantity, lot.step, anchor)
    assert quantity >= lot.minimum and quantity > 0
    assert lot.maximum == 0 or quantity <= lot.maximum
    asked = Decimal(repr(raw)) if isinstance(raw, float) else raw
    assert quantity <= asked  # rounding down never buys more than asked  # type: ignore[operator]


@settings(max_examples=600, deadline=None)
@given(instrument_index, st.decimals(min_value=1, max_value=1_000_000, places=2), decimal_values)
def test_quantity_for_notional_respects_every_filter(index: int, notional: Decimal, raw_price: Decimal) -> None:
    instrument = _pick(index)
    try:
        price = instrument.round_price(raw_price)
        quantity = instrument.quantity_for_notional(notional, price)
    except InvalidOrderError as error:
        assert error.code is not None and str(error)
        return
    assert quantity * price <= notional
    instrument.validate(price, quantity, OrderType.LIMIT)  # the exchange would accept it
    if instrument.notional is not None:
        assert quantity * price >= instrument.notional.minimum


def test_futures_grid_is_anchored_at_minimum() -> None:
    from kestrel.core.identifiers import Symbol
    from kestrel.core.instrument import GridFilter

    odd = Instrument(
        Symbol("ODDUSDT"), Market.FUTURES, "ODD", "USDT",
        GridFilter("PRICE_FILTER", Decimal("0.03"), Decimal("100"), Decimal("0.05")),
        GridFilter("LOT_SIZE", Decimal("1"), Decimal("1000"), Decimal("1")),
    )  # fmt: skip
    assert odd.round_price("1.00", Rounding.DOWN) == Decimal("0.98")
    spot = Instrument(
        Symbol("ODDUSDT"), Market.SPOT, "ODD", "USDT",
        GridFilter("PRICE_FILTER", Decimal("0.03"), Decimal("100"), Decimal("0.05")),
        GridFilter("LOT_SIZE", Decimal("1"), Decimal("1000"), Decimal("1")),
    )  # fmt: skip
    assert spot.round_price("1.00", Rounding.DOWN) == Decimal("1.00")


def test_float_input_has_no_artefacts(shared_data: Path) -> None:
    btc = newest("BTCUSDT", Market.FUTURES)
    assert str(btc.round_price(0.1 + 67000.2)) == "67000.30"  # quantized to the tick "0.10"
    assert str(btc.round_quantity(0.1 + 0.2)) == "0.300"


def test_error_codes_follow_the_exchange(shared_data: Path) -> None:
    futures = newest("BTCUSDT", Market.FUTURES)
    spot = newest("BTCUSDT", Market.SPOT)
    with pytest.raises(InvalidOrderError) as below:
        futures.check_notional(Decimal("10"), Decimal("0.001"))
    assert below.value.code == -4164
    with pytest.raises(InvalidOrderError) as off_grid:
        futures.validate(Decimal("67000.05"), Decimal("0.001") * 100, OrderType.LIMIT)
    assert off_grid.value.code == -4014
    with pytest.raises(InvalidOrderError) as spot_fail:
        spot.validate(Decimal("67000"), Decimal("0.0000001"), OrderType.LIMIT)
    assert spot_fail.value.code == -1013 and "Filter failure: LOT_SIZE" in str(spot_fail.value)


def test_ticks_and_lots_round_trip(shared_data: Path) -> None:
    btc = newest("BTCUSDT", Market.FUTURES)
    assert btc.ticks_to_price(btc.price_to_ticks("67000.3")) == Decimal("67000.3")
    assert btc.lots_to_quantity(btc.quantity_to_lots("0.123")) == Decimal("0.123")
    with pytest.raises(ValueError, match="not a multiple"):
        btc.price_to_ticks("67000.33")


@pytest.mark.parametrize("bad", ["nan", "inf", "-1", "0", "abc"])
def test_bad_numbers_are_rejected(bad: str, shared_data: Path) -> None:
    btc = newest("BTCUSDT", Market.FUTURES)
    with pytest.raises((InvalidOrderError, ValueError)):
        btc.round_price(bad)
