"""Every limit of R-RK-1/2, driven into on purpose, rejects with its own rule."""

from __future__ import annotations

from decimal import Decimal

import pytest

from kestrel.config.models import RiskConfig
from kestrel.core.enums import Market
from kestrel.risk import EntryRequest, RiskEngine, TradeResult
from kestrel.risk.limits import DAY_NS, RiskRule

S = 1_000_000_000
T0 = 1_700_000_000 * S


def config(**overrides: object) -> RiskConfig:
    base: dict[str, object] = {
        "leverage": 5, "max_leverage": 10, "max_loss_per_trade_pct": 1.0, "daily_drawdown_stop_pct": 5.0,
        "kill_switch_drawdown_pct": 15.0, "max_capital_in_use_pct": 50.0, "max_consecutive_losses": 3,
        "min_trade_interval_s": 30.0, "max_trades_per_24h": 5, "circuit_breaker_move_pct": 5.0,
        "circuit_breaker_window_s": 60.0, "circuit_breaker_cooldown_s": 900.0, "min_liquidity_score": 0.2,
        "high_volatility_throttle": 3.0,
    }  # fmt: skip
    base.update(overrides)
    return RiskConfig(**base)  # type: ignore[arg-type]


def request(symbol: str = "BTCUSDT", **overrides: object) -> EntryRequest:
    values: dict[str, object] = {
        "market": Market.FUTURES, "symbol": symbol, "notional": Decimal(100), "margin": Decimal(20), "leverage": 5,
        "entry_price": Decimal(100), "stop_price": Decimal(99), "quantity": Decimal(1),
    }  # fmt: skip
    values.update(overrides)
    return EntryRequest(**values)  # type: ignore[arg-type]


@pytest.fixture
def engine() -> RiskEngine:
    return RiskEngine(config(), Decimal(1000), T0)


def rejected_by(engine: RiskEngine, entry: EntryRequest, ts: int) -> RiskRule | None:
    decision = engine.check_entry(entry, ts)
    return None if decision.approved else decision.rejection.rule  # type: ignore[union-attr]


def test_a_normal_entry_passes(engine: RiskEngine) -> None:
    decision = engine.check_entry(request(), T0)
    assert decision.approved and decision.size_multiplier == 1.0


def test_max_loss_per_trade(engine: RiskEngine) -> None:
    # 1% of 1000 = 10 USDT; 1 BTC × (100 − 89) = 11 at the stop
    assert rejected_by(engine, request(stop_price=Decimal(89)), T0) is RiskRule.MAX_LOSS_PER_TRADE
    assert rejected_by(engine, request(stop_price=Decimal(90)), T0) is None  # exactly 10: allowed


def test_daily_drawdown_stop_and_next_day_reset(engine: RiskEngine) -> None:
    engine.on_equity(Decimal(951), T0 + S)
    assert rejected_by(engine, request(), T0 + 2 * S) is None
    engine.on_equity(Decimal(950), T0 + 3 * S)  # −5.0 %
    assert rejected_by(engine, request(), T0 + 4 * S) is RiskRule.DAILY_DRAWDOWN
    assert rejected_by(engine, request(), T0 + DAY_NS) is None  # a new UTC day


def test_capital_in_use(engine: RiskEngine) -> None:
    engine.on_capital_in_use(Decimal(481))
    assert rejected_by(engine, request(), T0) is RiskRule.CAPITAL_IN_USE  # 481 + 20 > 500
    engine.on_capital_in_use(Decimal(480))
    assert rejected_by(engine, request(), T0) is None


def test_leverage_cap(engine: RiskEngine) -> None:
    assert rejected_by(engine, request(leverage=11), T0) is RiskRule.LEVERAGE


def test_consecutive_losses(engine: RiskEngine) -> None:
    for n in range(3):
        assert rejected_by(engine, request(), T0) is None, n
        engine.on_trade_closed(TradeResult(Decimal("-1"), T0))
    assert rejected_by(engine, request(), T0) is RiskRule.CONSECUTIVE_LOSSES
    engine.reset_consecutive_losses()
    engine.on_trade_closed(TradeResult(Decimal("-1"), T0))
    engine.on_trade_closed(TradeResult(Decimal("2"), T0))  # a win resets the run
    assert engine.consecutive_losses == 0


def test_kill_switch_on_drawdown_and_manual(engine: RiskEngine) -> None:
    engine.on_equity(Decimal(1200), T0 + S)  # new peak
    assert engine.on_equity(Decimal(1021), T0 + 2 * S) is None  # −14.9 % from peak
    event = engine.on_equity(Decimal(1019), T0 + 3 * S)  # −15.08 %
    assert event is not None and event.rule is RiskRule.KILL_SWITCH
    assert rejected_by(engine, request(), T0 + DAY_NS * 2) is RiskRule.KILL_SWITCH  # survives the day roll
    engine.reset_kill_switch()
    assert rejected_by(engine, request(), T0 + DAY_NS * 2) is None
    engine.engage_kill_switch("operator")
    assert rejected_by(engine, request(), T0 + DAY_NS * 2) is RiskRule.KILL_SWITCH


def test_min_interval_and_high_volatility_throttle(engine: RiskEngine) -> None:
    engine.record_entry(Market.FUTURES, "BTCUSDT", T0)
    assert rejected_by(engine, request(), T0 + 29 * S) is RiskRule.MIN_TRADE_INTERVAL
    assert rejected_by(engine, request(), T0 + 30 * S) is None
    assert rejected_by(engine, request(high_volatility=True), T0 + 89 * S) is RiskRule.MIN_TRADE_INTERVAL
    assert rejected_by(engine, request("ETHUSDT"), T0 + 1 * S) is None  # per symbol


def test_max_trades_per_24h(engine: RiskEngine) -> None:
    for n in range(5):
        engine.record_entry(Market.FUTURES, f"S{n}", T0 + n * S)
    assert rejected_by(engine, request(), T0 + 10 * S) is RiskRule.MAX_TRADES_24H
    assert rejected_by(engine, request(), T0 + DAY_NS + S) is None  # the first fell out of the window


def test_circuit_breaker_on_violent_move(engine: RiskEngine) -> None:
    assert engine.on_price(Market.FUTURES, "BTCUSDT", 100.0, T0) is None
    assert engine.on_price(Market.FUTURES, "BTCUSDT", 104.9, T0 + 30 * S) is None
    event = engine.on_price(Market.FUTURES, "BTCUSDT", 105.5, T0 + 40 * S)
    assert event is not None and event.rule is RiskRule.CIRCUIT_BREAKER
    assert rejected_by(engine, request(), T0 + 41 * S) is RiskRule.CIRCUIT_BREAKER
    assert rejected_by(engine, request("ETHUSDT"), T0 + 41 * S) is None
    assert rejected_by(engine, request(), T0 + 40 * S + 900 * S) is None  # cooldown over


def test_low_liquidity_disables_or_down_weights(engine: RiskEngine) -> None:
    assert rejected_by(engine, request(liquidity_score=0.1), T0) is RiskRule.LOW_LIQUIDITY
    decision = engine.check_entry(request(liquidity_score=0.5), T0)
    assert decision.approved and decision.size_multiplier == 0.5
