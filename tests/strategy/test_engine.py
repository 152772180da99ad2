"""The decision pipeline end to end: every skip reason, rules-only fallback, ids and timestamps."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path

import pytest

from kestrel.binance.schemas.exchange_info import parse_exchange_info
from kestrel.config.models import ExecutionConfig, RiskConfig, StrategyConfig
from kestrel.core.clock import SimClock
from kestrel.core.enums import Decision, Market, Side
from kestrel.core.instrument import Instrument
from kestrel.risk import RiskEngine
from kestrel.strategy.engine import DecisionEngine, Exposure, MarketState
from kestrel.strategy.rules import RuleBook, empty_rule_set, parse_rules

S = 1_000_000_000
T0 = 1_700_000_000 * S


class FixedModel:
    version = "m-1"

    def __init__(self, probability: float) -> None:
        self.probability = probability
        self.calls = 0

    def predict_probability(self, features: Mapping[str, float]) -> float:
        self.calls += 1
        return self.probability


@pytest.fixture(scope="module")
def instruments(shared_data: Path) -> dict[tuple[Market, str], Instrument]:
    payload = json.loads((shared_data / "exchange_info/usdm_exchangeInfo_2025-03-06_baouih.json").read_text())
    btc = next(i for i in parse_exchange_info(payload, Market.FUTURES) if i.symbol == "BTCUSDT")
    return {(Market.FUTURES, "BTCUSDT"): btc}


def engine(instruments, model=None, rules=None, **risk):  # type: ignore[no-untyped-def]
    risk_config = RiskConfig(**{"leverage": 10, "max_leverage": 20, **risk})
    clock = SimClock(T0 + 7)
    return DecisionEngine(
        "sma", StrategyConfig(max_loss_usdt=2.0), risk_config, ExecutionConfig(cooldown_s=60),
        RuleBook(rules or empty_rule_set()), RiskEngine(risk_config, Decimal(1000), T0), instruments, clock,
        model, config_rev="cfg1",
    )  # fmt: skip


def state(ts: int = T0, **overrides: object) -> MarketState:
    values: dict[str, object] = {
        "market": Market.FUTURES, "symbol": "BTCUSDT", "mid": 84123.4, "spread_bps": 0.5,
        "depth_top1_usdt": 100_000.0, "atr": 350.0, "features": {"ofi": 0.3, "qi": -0.1}, "ts_event": ts - 5,
        "ts_init": ts, "funding_next": 0.0001,
    }  # fmt: skip
    values.update(overrides)
    return MarketState(**values)  # type: ignore[arg-type]


def test_enter_with_intent_and_three_timestamps(instruments) -> None:  # type: ignore[no-untyped-def]
    model = FixedModel(0.9)
    pipeline = engine(instruments, model)
    outcome = pipeline.decide(state(), Side.BUY, Exposure())
    signal, intent = outcome.signal, outcome.intent
    assert signal.decision is Decision.ENTER and intent is not None
    assert (signal.ts_event, signal.ts_init, signal.ts_infer) == (T0 - 5, T0, T0 + 7)
    assert signal.p_up == 0.9 and signal.model_version == "m-1" and signal.size_multiplier == pytest.approx(1.2)
    assert signal.config_rev == "cfg1/none"
    assert intent.quantity == Decimal("0.002") and intent.signal_id == signal.signal_id
    assert intent.stop_loss_price is not None and intent.take_profit_price is not None
    assert intent.stop_loss_price < intent.price < intent.take_profit_price  # type: ignore[operator]
    again = engine(instruments, FixedModel(0.9)).decide(state(), Side.BUY, Exposure())
    assert again.intent is not None and again.intent.intent_id == intent.intent_id  # deterministic ids


def test_duplicate_and_cooldown(instruments) -> None:  # type: ignore[no-untyped-def]
    pipeline = engine(instruments)
    assert pipeline.decide(state(), Side.BUY, Exposure()).intent is not None
    duplicate = pipeline.decide(state(), Side.BUY, Exposure())
    assert duplicate.intent is None and "duplicate" in duplicate.signal.reasons[0]
    cooling = pipeline.decide(state(T0 + 59 * S), Side.BUY, Exposure())
    assert cooling.intent is None and cooling.signal.reasons[0].startswith("cooldown")
    assert pipeline.decide(state(T0 + 59 * S + 1), Side.SELL, Exposure()).intent is not None  # other side
    blocked = pipeline.decide(state(T0 + 60 * S), Side.BUY, Exposure())  # cooldown over, but risk's
    assert blocked.rejection is not None and blocked.rejection.rule.value == "min_trade_interval"  # 30 s/symbol
    assert pipeline.decide(state(T0 + 90 * S), Side.BUY, Exposure()).intent is not None


def test_gate_rules_model_sizing_and_risk_skips(instruments) -> None:  # type: ignore[no-untyped-def]
    gated = engine(instruments).decide(state(spread_bps=50.0, funding_next=0.01), Side.BUY, Exposure())
    assert gated.signal.decision is Decision.SKIP and len([r for r in gated.signal.reasons if r.startswith("L0")]) == 2
    rules = parse_rules("version: 1\nrules:\n  - {name: no_shorts, when: 'side < 0', then: {skip_entry: true}}\n")
    skipped = engine(instruments, rules=rules).decide(state(), Side.SELL, Exposure())
    assert skipped.signal.reasons == ("L1: no_shorts", "L1: skip_entry")
    assert skipped.signal.config_rev == f"cfg1/{rules.revision}"
    weak = engine(instruments, FixedModel(0.3)).decide(state(), Side.BUY, Exposure())
    assert weak.intent is None and "L2" in weak.signal.reasons[-1]
    short = engine(instruments, FixedModel(0.3)).decide(state(), Side.SELL, Exposure())
    assert short.intent is not None and short.signal.p_up == pytest.approx(0.7)  # the model says down
    tiny = engine(instruments, leverage=2).decide(state(), Side.BUY, Exposure())  # 40 USDT < 100 minimum
    assert tiny.intent is None and tiny.signal.reasons[-1].startswith("sizing: ")
    risky = engine(instruments, max_capital_in_use_pct=1.0).decide(state(), Side.BUY, Exposure())
    assert risky.rejection is not None and risky.rejection.rule.value == "capital_in_use"
    assert risky.signal.reasons[-1].startswith("risk: capital_in_use")


def test_degraded_data_falls_back_to_rules_only(instruments) -> None:  # type: ignore[no-untyped-def]
    model = FixedModel(0.1)  # would skip
    outcome = engine(instruments, model).decide(state(degraded=True), Side.BUY, Exposure())
    assert outcome.intent is not None and model.calls == 0
    assert "degraded data: rules-only" in outcome.signal.reasons and outcome.signal.p_up is None


def test_the_de_dup_memory_is_bounded(instruments, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import kestrel.strategy.engine as engine_module

    monkeypatch.setattr(engine_module, "SEEN_CAPACITY", 3)
    pipeline = engine(instruments)
    for n in range(5):  # skipped by the gate (wide spread), each remembered for de-dup
        pipeline.decide(state(T0 + n, spread_bps=50.0), Side.BUY, Exposure())
    assert len(pipeline._seen) == 3
    again = pipeline.decide(state(T0 + 4, spread_bps=50.0), Side.BUY, Exposure())  # recent: still a duplicate
    assert "duplicate" in again.signal.reasons[0]
    forgotten = pipeline.decide(state(T0 + 0, spread_bps=50.0), Side.BUY, Exposure())  # the oldest: forgotten
    assert "duplicate" not in forgotten.signal.reasons[0]
