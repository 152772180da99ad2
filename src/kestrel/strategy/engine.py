"""The decision pipeline (R-SE-1…7): one market state in, one Signal (and maybe an Intent) out.

cooldown / de-dup → L0 gate → L1 rules (one RuleSet revision for the whole decision, RCU) → L2 model
score (rules-only when data is degraded or no model is configured) → sizing with exchange rounding →
risk limits → Intent. Every decision, taken or skipped, yields a Signal stamped with ts_event (exchange
time of the data), ts_init (when we received it) and ts_infer (when the decision used it), the rules'
revision and the reasons. Ids derive from the decision's inputs, so replaying the same event produces
the same ids and the ledger stores it once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from kestrel.config.models import ExecutionConfig, RiskConfig, StrategyConfig
from kestrel.core.clock import Clock
from kestrel.core.enums import Decision, Market, OrderType, Side
from kestrel.core.errors import InvalidOrderError
from kestrel.core.identifiers import IntentId, SignalId, StrategyId
from kestrel.core.instrument import Instrument
from kestrel.core.orders import Intent, Signal
from kestrel.risk.limits import EntryRequest, RiskEngine, RiskRejection
from kestrel.strategy.gate import GateInputs, evaluate_gate
from kestrel.strategy.rules import RuleBook
from kestrel.strategy.scoring import combined_size_multiplier
from kestrel.strategy.sizing import SizedEntry, size_entry

NANOS_PER_SECOND = 1_000_000_000
SEEN_CAPACITY = 100_000  # decisions remembered for de-dup


class ModelScorer(Protocol):
    """A calibrated model: p(up) for a feature row (the research registry's ONNX models fit this)."""

    version: str

    def predict_probability(self, features: Mapping[str, float]) -> float: ...


@dataclass(frozen=True, slots=True)
class MarketState:
    market: Market
    symbol: str
    mid: float
    spread_bps: float
    depth_top1_usdt: float
    atr: float
    features: Mapping[str, float]
    ts_event: int
    ts_init: int
    funding_next: float | None = None
    realized_volatility: float | None = None
    liquidity_score: float = 1.0
    high_volatility: bool = False
    degraded: bool = False
    quality_flags: int = 0


@dataclass(frozen=True, slots=True)
class Exposure:
    spot_notional_in_use: float = 0.0
    futures_margin_in_use: float = 0.0
    open_entries_spot: int = 0
    open_entries_futures: int = 0


@dataclass(frozen=True, slots=True)
class _Context:
    state: MarketState
    side: Side
    key: str
    revision: str


@dataclass(frozen=True, slots=True)
class DecisionOutcome:
    signal: Signal
    intent: Intent | None
    sized: SizedEntry | None
    rejection: RiskRejection | None


class DecisionEngine:
    def __init__(
        self,
        strategy_id: str,
        strategy: StrategyConfig,
        risk_config: RiskConfig,
        execution: ExecutionConfig,
        rules: RuleBook,
        risk: RiskEngine,
        instruments: Mapping[tuple[Market, str], Instrument],
        clock: Clock,
        model: ModelScorer | None = None,
        config_rev: str = "",
    ) -> None:
        self.strategy_id = StrategyId(strategy_id)
        self.strategy = strategy
        self.risk_config = risk_config
        self.execution = execution
        self.rules = rules
        self.risk = risk
        self.instruments = instruments
        self.clock = clock
        self.model = model
        self.config_rev = config_rev
        self._cooldown_until: dict[tuple[Market, str, Side], int] = {}
        # decided keys, oldest first, bounded: a replay repeats recent events, and a live node must not
        # grow a set by one entry per decision for as long as it runs
        self._seen: dict[str, None] = {}

    def decide(self, state: MarketState, side: Side, exposure: Exposure) -> DecisionOutcome:
        key = _decision_key(self.strategy_id, state, side)
        rule_set = self.rules.current  # RCU: this decision finishes on this revision whatever reloads
        revision = f"{self.config_rev}/{rule_set.revision}" if self.config_rev else rule_set.revision
        base = _Context(state, side, key, revision)
        if key in self._seen:
            return self._skip(base, reasons=("duplicate: this event was already decided",))
        self._seen[key] = None
        if len(self._seen) > SEEN_CAPACITY:
            del self._seen[next(iter(self._seen))]
        cooldown = self._cooldown_until.get((state.market, state.symbol, side), 0)
        if state.ts_init < cooldown:
            return self._skip(base, reasons=(f"cooldown until {cooldown}",))
        spot = state.market is Market.SPOT
        leverage = 1 if spot else self.risk_config.leverage
        gate = evaluate_gate(
            GateInputs(
                state.market, state.spread_bps, state.depth_top1_usdt, None if spot else state.funding_next,
                float(self.execution.base_margin_usdt), exposure.spot_notional_in_use,
                exposure.futures_margin_in_use, exposure.open_entries_spot if spot else exposure.open_entries_futures,
            ),
            self.risk_config,
        )  # fmt: skip
        if not gate.passed:
            return self._skip(base, reasons=tuple(f"L0: {r}" for r in gate.reasons))
        features = {**state.features, "degraded": 1.0 if state.degraded else 0.0, "side": float(side.sign)}
        outcome = rule_set.evaluate(features)
        reasons = tuple(f"L1: {name}" for name in outcome.matched)
        if outcome.skip_entry:
            return self._skip(base, reasons=(*reasons, "L1: skip_entry"))
        probability: float | None = None
        model_version: str | None = None
        if self.model is not None and not state.degraded:
            probability = self.model.predict_probability(state.features)
            model_version = self.model.version
            if side is Side.SELL:
                probability = 1.0 - probability  # the model scores "up"; a short wants "down"
        elif state.degraded:
            reasons = (*reasons, "degraded data: rules-only")
        size_mult = combined_size_multiplier(outcome.size_mult, probability, self.strategy, state.realized_volatility)
        if size_mult == 0.0:
            return self._skip(base, reasons=(*reasons, "L2: probability below the lowest band"), p=probability,
                              model_version=model_version)  # fmt: skip
        instrument = self.instruments[(state.market, state.symbol)]
        try:
            sized = size_entry(
                instrument, side, Decimal(repr(state.mid)), Decimal(repr(state.atr)), size_mult,
                self.execution.base_margin_usdt, leverage, self.strategy, outcome.tp_mult, outcome.sl_mult,
            )  # fmt: skip
        except (InvalidOrderError, ValueError) as error:
            return self._skip(base, reasons=(*reasons, f"sizing: {error}"), p=probability, size=size_mult,
                              model_version=model_version)  # fmt: skip
        decision = self.risk.check_entry(
            EntryRequest(
                state.market, state.symbol, sized.notional, sized.margin, leverage, sized.entry_price,
                sized.stop_price, sized.quantity, state.liquidity_score, state.high_volatility,
            ),
            state.ts_init,
        )  # fmt: skip
        if not decision.approved:
            rejection = decision.rejection
            assert rejection is not None
            why = f"risk: {rejection.rule.value}: {rejection.detail}"
            return self._skip(base, reasons=(*reasons, why), p=probability, size=size_mult, rejection=rejection,
                              model_version=model_version)  # fmt: skip
        self.risk.record_entry(state.market, state.symbol, state.ts_init)
        cooldown_ns = int(self.execution.cooldown_s * NANOS_PER_SECOND)
        self._cooldown_until[(state.market, state.symbol, side)] = state.ts_init + cooldown_ns
        signal = self._signal(base, Decision.ENTER, reasons, probability, size_mult, model_version)
        intent = Intent(
            IntentId(f"i-{key}"), self.strategy_id, state.market, state.symbol, side, sized.quantity, state.ts_init,
            OrderType.LIMIT, sized.entry_price, sized.take_profit_price, sized.stop_price,
            signal_id=signal.signal_id, config_rev=revision,
        )  # fmt: skip
        return DecisionOutcome(signal, intent, sized, None)

    def _signal(
        self,
        context: _Context,
        decision: Decision,
        reasons: tuple[str, ...],
        probability: float | None,
        size_mult: float,
        model_version: str | None,
    ) -> Signal:
        state = context.state
        top = sorted(state.features.items(), key=lambda item: abs(item[1]), reverse=True)[:5]
        return Signal(
            SignalId(f"s-{context.key}"), self.strategy_id, state.market, state.symbol, decision, state.ts_event,
            state.ts_init, self.clock.timestamp_ns(), side=context.side, p_up=probability, size_multiplier=size_mult,
            model_version=model_version, config_rev=context.revision, reasons=reasons, features_top=tuple(top),
            quality_flags=state.quality_flags,
        )  # fmt: skip

    def _skip(
        self,
        context: _Context,
        reasons: tuple[str, ...],
        p: float | None = None,
        size: float = 0.0,
        rejection: RiskRejection | None = None,
        model_version: str | None = None,
    ) -> DecisionOutcome:
        signal = self._signal(context, Decision.SKIP, reasons, p, size, model_version)
        return DecisionOutcome(signal, None, None, rejection)


def _decision_key(strategy_id: str, state: MarketState, side: Side) -> str:
    text = f"{strategy_id}|{state.market.value}|{state.symbol}|{side.value}|{state.ts_event}"
    return hashlib.blake2b(text.encode(), digest_size=10).hexdigest()
