from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from kestrel.binance.schemas.exchange_info import parse_exchange_info
from kestrel.config.models import RiskConfig, StrategyConfig
from kestrel.core.enums import Market, Side
from kestrel.core.errors import InvalidOrderError
from kestrel.core.instrument import Instrument
from kestrel.strategy.gate import GateInputs, evaluate_gate
from kestrel.strategy.scoring import combined_size_multiplier, ensemble_probability, size_multiplier_for
from kestrel.strategy.sizing import size_entry

FEE = Decimal("0.0005")


def gate_inputs(**overrides: object) -> GateInputs:
    values: dict[str, object] = {
        "market": Market.FUTURES, "spread_bps": 1.0, "depth_top1_usdt": 50_000.0, "funding_next": 0.0001,
        "proposed_margin_usdt": 20.0, "spot_notional_in_use_usdt": 0.0, "futures_margin_in_use_usdt": 0.0,
        "open_entries_in_market": 0,
    }  # fmt: skip
    values.update(overrides)
    return GateInputs(**values)  # type: ignore[arg-type]


def test_gate_passes_and_lists_every_failure() -> None:
    limits = RiskConfig()
    assert evaluate_gate(gate_inputs(), limits).passed
    result = evaluate_gate(
        gate_inputs(spread_bps=float("nan"), depth_top1_usdt=10.0, funding_next=-0.01, futures_margin_in_use_usdt=490.0,
                    open_entries_in_market=5),
        limits,
    )  # fmt: skip
    assert not result.passed and len(result.reasons) == 5
    spot = evaluate_gate(gate_inputs(market=Market.SPOT, funding_next=None, spot_notional_in_use_usdt=990.0), limits)
    assert spot.reasons == ("spot notional 1010.00 > budget 1000.0",)


@pytest.mark.parametrize(
    ("p", "multiplier"),
    [(0.99, 1.2), (0.8501, 1.2), (0.85, 1.0), (0.6, 1.0), (0.5999, 0.5), (0.4, 0.5), (0.3999, 0.0), (0.0, 0.0)],
)
def test_score_bands_of_r_se_3(p: float, multiplier: float) -> None:
    assert size_multiplier_for(p, StrategyConfig().score_bands) == multiplier


def test_combined_multiplier_and_ensembles() -> None:
    config = StrategyConfig(target_volatility=0.5)
    assert combined_size_multiplier(1.5, 0.9, config) == pytest.approx(1.8)
    assert combined_size_multiplier(1.5, 0.3, config) == 0.0  # the model says skip
    assert combined_size_multiplier(2.0, 0.9, config) == 2.0  # clamped at the top
    assert combined_size_multiplier(1.0, None, config) == 1.0  # rules-only mode
    assert combined_size_multiplier(1.0, 0.7, config, realized_volatility=1.0) == 0.5  # vol scaling
    assert ensemble_probability([0.9, 0.7, 0.2], "vote") == pytest.approx(2 / 3)
    assert ensemble_probability([0.9, 0.5], "weight", [3, 1]) == pytest.approx(0.8)
    with pytest.raises(ValueError, match="weights"):
        ensemble_probability([0.9], "weight", [0])
    with pytest.raises(ValueError, match="probability"):
        size_multiplier_for(1.5, config.score_bands)


@pytest.fixture(scope="module")
def btc_futures(shared_data: Path) -> Instrument:
    payload = json.loads((shared_data / "exchange_info/usdm_exchangeInfo_2025-03-06_baouih.json").read_text())
    return next(i for i in parse_exchange_info(payload, Market.FUTURES) if i.symbol == "BTCUSDT")


@pytest.mark.parametrize("side", [Side.BUY, Side.SELL])
def test_futures_sizing_of_r_se_4(btc_futures: Instrument, side: Side) -> None:
    config = StrategyConfig(max_loss_usdt=2.0, atr_stop_multiplier=2.0, take_profit_margin_pct=10.0)
    sized = size_entry(btc_futures, side, "84123.37", atr="350", size_multiplier=1.2, base_margin_usdt=20,
                       leverage=10, config=config)  # fmt: skip
    # margin 24 × 10 = 240 USDT notional at 84123.4 → 0.002 BTC (step 0.001, rounded down; min notional 100)
    assert sized.entry_price == Decimal("84123.4") and sized.quantity == Decimal("0.002")
    assert sized.notional == Decimal("168.2468") and sized.margin == Decimal("16.82468")
    # d = min(2 × 350, 2 / 0.002 = 1000) = 700 → SL 700 away, on the tick grid
    assert abs(sized.entry_price - sized.stop_price) == Decimal("700.0")
    assert sized.loss_at_stop <= Decimal("2.0")
    target = Decimal("0.10") * sized.margin
    assert sized.net_at_take_profit >= target  # TP nets ≥ 10 % of the margin after fees
    one_tick_closer = sized.take_profit_price - side.sign * btc_futures.tick_size
    net_closer = (
        side.sign * (one_tick_closer - sized.entry_price) * sized.quantity
        - FEE * (sized.entry_price + one_tick_closer) * sized.quantity
    )
    assert net_closer < target  # and it is the nearest such price
    assert (sized.take_profit_price > sized.entry_price) == (side is Side.BUY)


def test_max_loss_bounds_the_stop(btc_futures: Instrument) -> None:
    config = StrategyConfig(max_loss_usdt=1.0)
    sized = size_entry(btc_futures, Side.BUY, 84000, 5000, 1.0, 20, 10, config)
    assert sized.loss_at_stop <= Decimal("1.0")  # 2 × ATR would lose 20 USDT
    assert sized.entry_price - sized.stop_price == Decimal("500.0")


def test_below_exchange_minimum_is_a_clear_error(btc_futures: Instrument) -> None:
    with pytest.raises(InvalidOrderError, match=r"MIN_NOTIONAL|LOT_SIZE"):
        size_entry(btc_futures, Side.BUY, 84000, 300, 0.25, 20, 2, StrategyConfig())  # 10 USDT notional


def test_spot_sizing_has_no_leverage(shared_data: Path) -> None:
    payload = json.loads(
        (shared_data / "exchange_info/spot_exchangeInfo_2024-09-08_TRADING-only_robo-investimentos.json").read_text()
    )
    eth = next(i for i in parse_exchange_info(payload, Market.SPOT) if i.symbol == "ETHUSDT")
    sized = size_entry(eth, Side.BUY, "2301.234", "20", 1.0, 50, 1, StrategyConfig(max_loss_usdt=2.0))
    assert sized.quantity * sized.entry_price <= Decimal(50)
    assert sized.stop_price < sized.entry_price < sized.take_profit_price  # OCO: TP above, SL below
    with pytest.raises(ValueError, match="leverage"):
        size_entry(eth, Side.BUY, "2301", "20", 1.0, 50, 3, StrategyConfig())
