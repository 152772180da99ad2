"""R-PM-1 rules fire at the right ROE levels on scripted price paths."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from kestrel.binance.schemas.exchange_info import parse_exchange_info
from kestrel.config.models import PositionConfig
from kestrel.core.enums import Market, Side
from kestrel.core.instrument import Instrument
from kestrel.portfolio.manager import AddOn, CloseAll, ClosePartial, MoveStop, PositionManager

S = 1_000_000_000
FEE = Decimal("0.0005")


@pytest.fixture(scope="module")
def eth(shared_data: Path) -> Instrument:
    payload = json.loads((shared_data / "exchange_info/usdm_exchangeInfo_2025-03-06_baouih.json").read_text())
    return next(i for i in parse_exchange_info(payload, Market.FUTURES) if i.symbol == "ETHUSDT")


def net_if_closed_at(position, price: Decimal) -> Decimal:  # type: ignore[no-untyped-def]
    sign = position.side.sign
    return (
        sign * (price - position.average_entry) * position.quantity
        - position.fees_paid
        - FEE * price * position.quantity
    )


@pytest.mark.parametrize("side", [Side.BUY, Side.SELL])
def test_long_and_short_paths(eth: Instrument, side: Side) -> None:
    manager = PositionManager(PositionConfig())
    # 1 ETH at 2000 with 10× leverage: margin 200; ROE moves 5 % per 10 USDT (0.5 %) of price
    entry = Decimal(2000)
    position = manager.open(eth, side, Decimal(1), entry, 10, entry - side.sign * 40, FEE, 0)
    sign = side.sign

    def mark(move: int) -> Decimal:
        return entry + sign * Decimal(move)

    assert manager.on_mark(position, mark(9), 1 * S) == []  # ROE 4.5 %
    actions = manager.on_mark(position, mark(10), 2 * S)  # ROE 5 %: first add-on
    assert actions == [AddOn(Decimal("1.000"), Decimal("5"))]
    manager.on_fill(position, side, Decimal(1), mark(10))
    assert position.average_entry == entry + sign * 5  # re-averaged
    assert position.margin == Decimal(200) + mark(10) / 10
    # on the new basis ROE 10 % is 0.10 × margin / quantity away from the average entry
    roe_10 = position.average_entry + sign * (Decimal("0.10") * position.margin / position.quantity)
    assert manager.on_mark(position, roe_10 - sign * Decimal("0.01"), 3 * S) == []  # just below 10 %
    actions = manager.on_mark(position, roe_10, 4 * S)  # ROE 10 %: second add-on and breakeven
    assert isinstance(actions[0], AddOn) and isinstance(actions[1], MoveStop)
    assert actions[1].reason == "breakeven"
    breakeven = actions[1].stop_price
    assert net_if_closed_at(position, breakeven) >= 0  # closing there loses nothing after fees
    assert net_if_closed_at(position, breakeven - sign * eth.tick_size) < 0  # and it is the tightest such stop
    retightened = manager.on_fill(position, side, Decimal(1), roe_10)
    assert position.add_ons_done == 2
    assert len(retightened) == 1 and isinstance(retightened[0], MoveStop)
    assert net_if_closed_at(position, retightened[0].stop_price) >= 0  # still breakeven for 3 ETH
    # no third add-on, whatever the ROE; partial close of the first entry's quantity at ROE ≥ 12 %
    roe_12 = position.average_entry + sign * (Decimal("0.12") * position.margin / position.quantity)
    actions = manager.on_mark(position, roe_12 + sign * 1, 5 * S)
    assert [type(a) for a in actions] == [ClosePartial]
    assert actions[0] == ClosePartial(Decimal(1), actions[0].reason)  # type: ignore[union-attr]
    manager.on_fill(position, side.opposite(), Decimal(1), roe_12)
    roe_20 = position.average_entry + sign * (Decimal("0.20") * position.margin / position.quantity)
    actions = manager.on_mark(position, roe_20 + sign * 1, 6 * S)
    assert len(actions) == 1 and isinstance(actions[0], MoveStop) and actions[0].reason == "lock"
    locked = net_if_closed_at(position, actions[0].stop_price)
    assert locked >= Decimal("0.10") * position.margin  # +10 % net of the margin is locked
    assert manager.on_mark(position, roe_20 + sign * 50, 7 * S) == []  # each rule fires once
    # the stop is touched on the way back
    assert manager.on_mark(position, actions[0].stop_price, 8 * S) == [
        CloseAll(f"stop {actions[0].stop_price} touched at {actions[0].stop_price}")
    ]


def test_max_holding_time(eth: Instrument) -> None:
    manager = PositionManager(PositionConfig(max_holding_s=3600))
    position = manager.open(eth, Side.BUY, Decimal(1), Decimal(2000), 5, Decimal(1900), FEE, 100 * S)
    assert manager.on_mark(position, Decimal(2001), 100 * S + 3599 * S) == []
    assert manager.on_mark(position, Decimal(2001), 100 * S + 3600 * S) == [CloseAll("max holding time 3600s reached")]
    assert manager.on_mark(position, Decimal(2001), 100 * S + 3700 * S) == []  # once


def test_stops_only_tighten(eth: Instrument) -> None:
    manager = PositionManager(PositionConfig(add_on_roe_pct=[]))
    position = manager.open(eth, Side.BUY, Decimal(1), Decimal(2000), 10, Decimal(2030), FEE, 0)  # already above BE
    actions = manager.on_mark(position, Decimal(2040), S)
    moves = [a for a in actions if isinstance(a, MoveStop)]
    assert moves and moves[0].stop_price == Decimal(2030)  # breakeven would loosen it: kept
