"""Spot balances, USD-M margin, leverage, liquidation at mark price and funding settlement."""

from __future__ import annotations

import pytest

from kestrel.core.enums import MarginType, Side, TimeInForce
from kestrel.core.errors import InvalidOrderError
from kestrel.core.events import FundingRate
from kestrel.core.venue import AccountUpdate, AccountUpdateReason, OrderUpdate
from kestrel.matching.margin import BTCUSDT_BRACKETS, build_table
from tests.matching.helpers import FUT, SPOT, D, engine, limit, mark, market_order, snapshot


def test_spot_limit_buy_locks_quote_and_cancel_unlocks_it() -> None:
    e = engine(spot_usdt=D(1000))
    e.apply(snapshot(SPOT))
    e.submit_order("a", limit(Side.BUY, "5", "99.00", market=SPOT), 2_000)
    spot = e.accounts["a"].spot
    assert (spot.free("USDT"), spot.locked("USDT")) == (D(505), D(495))
    e.cancel_order("a", SPOT, "BTCUSDT", 3_000, order_id=1)
    assert (spot.free("USDT"), spot.locked("USDT")) == (D(1000), D(0))


def test_spot_buy_pays_the_fee_in_the_asset_received() -> None:
    e = engine(spot_usdt=D(1000), spot_btc=D(0))
    e.apply(snapshot(SPOT))
    e.submit_order("a", limit(Side.BUY, "1", "100.10", market=SPOT), 2_000)
    spot = e.accounts["a"].spot
    assert spot.free("BTC") == D("1") - D("1") * D("0.001")
    assert spot.free("USDT") == D(1000) - D("100.10")
    assert spot.locked("USDT") == 0


def test_spot_orders_beyond_the_balance_are_refused() -> None:
    e = engine(spot_usdt=D(100), spot_btc=D("0.1"))
    e.apply(snapshot(SPOT))
    with pytest.raises(InvalidOrderError) as error:
        e.submit_order("a", limit(Side.BUY, "2", "99.00", market=SPOT), 2_000)
    assert error.value.code == -2010
    with pytest.raises(InvalidOrderError):
        e.submit_order("a", market_order(Side.SELL, "0.2", market=SPOT), 2_000)
    with pytest.raises(InvalidOrderError):
        e.submit_order("a", market_order(Side.BUY, "1.5", market=SPOT), 2_000)


def test_futures_margin_is_checked_and_reserved_for_opening_orders() -> None:
    e = engine(futures_usdt=D(100))
    e.apply(snapshot(FUT))
    e.set_leverage("a", "BTCUSDT", 10, 1_500)
    e.submit_order("a", limit(Side.BUY, "5", "99.0"), 2_000)  # 495 notional / 10 = 49.5 margin
    futures = e.accounts["a"].futures
    assert futures.available("USDT") == D("50.5")
    with pytest.raises(InvalidOrderError) as error:
        e.submit_order("a", limit(Side.BUY, "6", "99.0"), 2_001)
    assert error.value.code == -2019


def test_leverage_and_margin_type_rules() -> None:
    e = engine()
    e.apply(snapshot(FUT))
    with pytest.raises(InvalidOrderError) as error:
        e.set_leverage("a", "BTCUSDT", 200, 1_000)
    assert error.value.code == -4028
    assert e.set_leverage("a", "BTCUSDT", 125, 1_000) == D(50_000)
    with pytest.raises(InvalidOrderError) as error:
        e.set_margin_type("a", "BTCUSDT", MarginType.CROSSED, 1_000)
    assert error.value.code == -4046
    e.submit_order("a", limit(Side.BUY, "0.1", "99.0"), 2_000)
    with pytest.raises(InvalidOrderError) as error:
        e.set_margin_type("a", "BTCUSDT", MarginType.ISOLATED, 2_000)
    assert error.value.code == -4047


def test_maintenance_margin_follows_the_brackets() -> None:
    assert BTCUSDT_BRACKETS.maintenance_margin(D(10_000)) == D(40)
    assert BTCUSDT_BRACKETS.maintenance_margin(D(100_000)) == D(100_000) * D("0.005") - D(50)
    assert BTCUSDT_BRACKETS.brackets[-1].cum == D(421_481_450)
    assert build_table([("0", "10", 5, "0.1"), ("10", "20", 2, "0.2")]).brackets[1].cum == D(1)


def test_isolated_position_is_liquidated_at_the_mark_and_loses_only_its_margin() -> None:
    e = engine(futures_usdt=D(1000))
    e.apply(snapshot(FUT, bids=[(100.0, 100.0)], asks=[(100.1, 100.0)]))
    e.set_margin_type("a", "BTCUSDT", MarginType.ISOLATED, 1_500)
    e.set_leverage("a", "BTCUSDT", 20, 1_500)
    e.submit_order("a", market_order(Side.BUY, "10"), 2_000)  # 1001 notional, ~50 isolated margin
    position = e.positions("a")[0]
    assert position.margin_type is MarginType.ISOLATED and position.isolated_wallet == D("50.05")
    liquidation = position.liquidation_price
    assert liquidation is not None and D(95) < liquidation < D("100.1")
    wallet = e.accounts["a"].futures.wallet("USDT")
    e.apply(mark(float(liquidation) + 0.2, 3_000))
    assert e.liquidations == 0
    events = e.apply(mark(float(liquidation) - 0.5, 4_000))
    assert e.liquidations == 1 and e.positions("a") == []
    assert any(isinstance(ev, AccountUpdate) and ev.reason is AccountUpdateReason.LIQUIDATION for ev in events)
    autoclose = [ev for ev in events if isinstance(ev, OrderUpdate) and ev.fill]
    assert autoclose[0].order.client_order_id.startswith("autoclose-")
    assert e.accounts["a"].futures.wallet("USDT") >= wallet - D("50.05") - D("0.5005")  # margin + taker fee


def test_cross_liquidation_never_leaves_a_negative_wallet() -> None:
    e = engine(futures_usdt=D(60))
    e.apply(snapshot(FUT, bids=[(100.0, 100.0)], asks=[(100.1, 100.0)]))
    e.set_leverage("a", "BTCUSDT", 20, 1_500)
    e.submit_order("a", market_order(Side.BUY, "10"), 2_000)
    e.apply(mark(80.0, 3_000))  # a gap far below the liquidation price
    futures = e.accounts["a"].futures
    assert e.liquidations == 1 and futures.wallet("USDT") == 0 and futures.insurance_cover > 0


def test_recorded_funding_settles_once_per_funding_time() -> None:
    e = engine()
    e.apply(snapshot(FUT))
    e.submit_order("a", market_order(Side.BUY, "2"), 2_000)
    wallet = e.accounts["a"].futures.wallet("USDT")
    funding = FundingRate(FUT, "BTCUSDT", 0.0001, 100.0, 8 * 3600 * 10**9, 8 * 3600 * 10**9)
    events = e.apply(funding)
    assert e.accounts["a"].futures.wallet("USDT") == wallet - D(2) * D(100) * D("0.0001")
    assert [ev.reason for ev in events if isinstance(ev, AccountUpdate)] == [AccountUpdateReason.FUNDING_FEE]
    e.apply(FundingRate(FUT, "BTCUSDT", 0.0001, 100.0, 8 * 3600 * 10**9 + 5_000_000, 8 * 3600 * 10**9 + 5_000_000))
    assert e.accounts["a"].futures.wallet("USDT") == wallet - D("0.02")  # the duplicate is ignored


def test_mark_price_stream_schedules_funding_at_the_next_funding_time() -> None:
    e = engine()
    e.apply(snapshot(FUT))
    e.submit_order("a", limit(Side.SELL, "1", "100.0", TimeInForce.IOC), 2_000)  # short 1
    next_funding = 16 * 3600 * 10**9
    e.apply(mark(100.0, 3_000, rate=-0.0002, next_funding_ns=next_funding))
    assert e.next_scheduled_ns() == next_funding
    wallet = e.accounts["a"].futures.wallet("USDT")
    e.advance_time(next_funding)
    assert e.accounts["a"].futures.wallet("USDT") == wallet - D("100.0") * D("0.0002")  # shorts pay a negative rate
    assert e.funding_payments[-1][3] == D("-0.02")


def test_deposits_are_reported() -> None:
    e = engine()
    events = e.deposit("a", SPOT, "ETH", D(2), 1_000)
    assert isinstance(events[0], AccountUpdate) and events[0].balances[0].free == D(2)
