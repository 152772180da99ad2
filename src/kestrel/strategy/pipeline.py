"""`pipeline`: the full decision pipeline as a strategy — DecisionEngine → Executor → PositionManager.

On every book update of a traded symbol it refreshes the symbol's features (`book_features`), lets
the position manager judge the open position at the new mid, and — at most once per
`decide_interval_ms` — when the fast/slow mid trend is past `trend_bps` in either direction, asks the
`DecisionEngine` for a decision on that side: cooldown and de-dup, L0 gate, L1 rules (hot reloaded on
the sweep), L2 model score (rules-only without a model or on degraded data), sizing, risk. An entry's
intent goes to the `Executor` (maker-first routing, taker fallback, TWAP slices, liquidity probe).
Fills open and grow the managed position; the manager's actions (add-ons, stop moves, partial
take-profit, stop-outs, maximum holding time) go back through the executor as intents of their own,
with ids derived from the entry's. A sweep timer re-judges every position at its last mid, as the
backstop of the event-driven path, and re-sends an exit that did not complete.

One position per symbol; stops are enforced by the manager on the strategy's marks (software stops),
so the same class runs unchanged in backtests, on paper and live.

Parameters: `config` (a YAML configuration; empty = the embedded defaults — pass the same file as
`--config`), `symbols` (comma-separated; empty = every loaded instrument), `trend_bps`,
`decide_interval_ms`, `bar_ms` (ATR bars), `model` (`none` or `logistic`), `model_weights`
(`name=weight,...`) and `model_intercept` for the logistic model.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

from kestrel.config.loading import config_revision, embedded_defaults, load_config
from kestrel.config.models import KestrelConfig
from kestrel.core.clock import TimeEvent
from kestrel.core.enums import Decision, Market, OrderType, Side
from kestrel.core.errors import ConfigurationError, InvalidOrderError
from kestrel.core.identifiers import IntentId, StrategyId
from kestrel.core.instrument import Rounding
from kestrel.core.orders import Fill, Intent, Signal
from kestrel.core.venue import BookView, OrderUpdate
from kestrel.execution.executor import Executor, IntentExecution, OrderRecord
from kestrel.execution.guard import GuardedVenue
from kestrel.execution.quality import ExecutionStats
from kestrel.portfolio.manager import Action as PositionAction
from kestrel.portfolio.manager import AddOn, ClosePartial, ManagedPosition, MoveStop, PositionManager
from kestrel.risk.limits import RiskEngine
from kestrel.strategy.base import Strategy
from kestrel.strategy.book_features import BookFeatures, FeatureSettings
from kestrel.strategy.engine import DecisionEngine, Exposure, MarketState, ModelScorer
from kestrel.strategy.rules import RuleBook, RuleError, empty_rule_set
from kestrel.strategy.scoring import LogisticScorer

NANOS_PER_MILLISECOND = 1_000_000
NANOS_PER_SECOND = 1_000_000_000
SWEEP_TIMER = "pipeline.sweep"


@dataclass
class _Held:
    """A managed position and the intents around it."""

    position: ManagedPosition
    entry_intent_id: str
    add_ons: int = 0
    exits: int = 0
    exit_intent_id: str | None = None


@dataclass(frozen=True, slots=True)
class ExitRecord:
    intent_id: str
    reason: str
    quantity: Decimal
    ts_ns: int


class PipelineStrategy(Strategy):
    name: ClassVar[str] = "pipeline"
    defaults: ClassVar[dict[str, Any]] = {
        "config": "",
        "symbols": "",
        "trend_bps": 0.5,
        "decide_interval_ms": 100,
        "bar_ms": 1000,
        "model": "none",
        "model_weights": "micro_trend=0.5,qi=0.5",
        "model_intercept": 0.0,
    }

    def __init__(self, params: dict[str, Any] | None = None) -> None:
        super().__init__(params)
        path = str(self.params["config"])
        try:
            self.config: KestrelConfig = load_config(Path(path)) if path else embedded_defaults()
        except (OSError, ValueError) as error:
            raise ConfigurationError(f"pipeline: cannot load config {path!r}: {error}") from None
        self.trend_bps = float(self.params["trend_bps"])
        self.decide_interval_ns = int(self.params["decide_interval_ms"]) * NANOS_PER_MILLISECOND
        bar_ns = int(self.params["bar_ms"]) * NANOS_PER_MILLISECOND
        if self.trend_bps <= 0 or self.decide_interval_ns < 0 or bar_ns <= 0:
            raise ConfigurationError("pipeline: need trend_bps > 0, decide_interval_ms >= 0, bar_ms > 0")
        self.model = _model(str(self.params["model"]), str(self.params["model_weights"]),
                            float(self.params["model_intercept"]))  # fmt: skip
        self.rules = _rules(self.config)
        self.feature_settings = FeatureSettings(
            bar_ns=bar_ns, atr_period=self.config.feature.atr_period,
            liquidity_threshold_usdt=self.config.feature.liquidity_threshold_usdt,
        )  # fmt: skip
        self.wanted = {s.strip().upper() for s in str(self.params["symbols"]).split(",") if s.strip()}
        self.manager = PositionManager(self.config.position)
        self.features: dict[tuple[Market, str], BookFeatures] = {}
        self.held: dict[tuple[Market, str], _Held] = {}
        self.entering: dict[tuple[Market, str], str] = {}  # symbol → entry intent still executing
        self.last_decision_ns: dict[tuple[Market, str], int] = {}
        self.signals_entered: list[Signal] = []
        self.skips = 0
        self.skip_reasons: Counter[str] = Counter()  # by the stage that stopped the decision
        self.intents: list[Intent] = []
        self.exits: list[ExitRecord] = []
        self.stop_moves: list[MoveStop] = []
        self.decisions = 0

    # ---- life cycle -------------------------------------------------------------------------------
    def on_start(self) -> None:
        context = self.context
        traded = {key for key in context.instruments if not self.wanted or key[1] in self.wanted}
        if not traded:
            raise ConfigurationError(f"pipeline: none of the symbols {sorted(self.wanted)} is loaded")
        self.traded = traded
        now = self.clock.timestamp_ns()
        venue = self.venue
        guard = venue if isinstance(venue, GuardedVenue) else None
        self.ledger = guard.ledger if guard is not None else None
        risk = guard.risk if guard is not None else None
        if risk is None:
            risk = RiskEngine(self.config.risk, self._equity() or Decimal(1), now)
        self.engine = DecisionEngine(
            self.name, self.config.strategy, self.config.risk, self.config.execution, self.rules, risk,
            context.instruments, self.clock, self.model, config_rev=config_revision(self.config)[:12],
        )  # fmt: skip
        self.executor = Executor(
            venue, self.clock, self.config.execution, context.instruments, context.books,
            random.Random(f"{self.config.seed}:routing"), stats=ExecutionStats(), ledger=self.ledger,
            on_fill=self._on_fill, on_done=self._on_done,
        )  # fmt: skip
        self.set_timer(SWEEP_TIMER, int(self.config.position.sweep_interval_s * NANOS_PER_SECOND))

    def _equity(self) -> Decimal:
        total = Decimal(0)
        for market in (Market.SPOT, Market.FUTURES):
            total += sum((b.wallet for b in self.venue.balances(market) if b.asset == "USDT"), Decimal(0))
        return total

    # ---- market events ----------------------------------------------------------------------------
    def on_book(self, book: BookView) -> None:
        for market in (Market.FUTURES, Market.SPOT):  # the view names its symbol, not its market
            key = (market, book.symbol)
            if key in self.traded and self.context.books.get(key) is book:
                self._on_symbol_book(key, book)
                return

    def _on_symbol_book(self, key: tuple[Market, str], book: BookView) -> None:
        now = self.clock.timestamp_ns()
        features = self.features.get(key)
        if features is None:
            features = self.features[key] = BookFeatures(self.feature_settings)
        if not features.update(book, now):
            return
        held = self.held.get(key)
        if held is not None:
            self._apply(key, held, self.manager.on_mark(held.position, Decimal(repr(features.mid)), now))
        if (
            not features.ready
            or now - self.last_decision_ns.get(key, -self.decide_interval_ns) < self.decide_interval_ns
        ):
            return
        trend = features.values["micro_trend"]
        side = Side.BUY if trend >= self.trend_bps else Side.SELL if trend <= -self.trend_bps else None
        if side is None or key in self.held or key in self.entering:
            return
        if key[0] is Market.SPOT and side is Side.SELL:
            return  # spot holds no short: only buys open positions there
        self.last_decision_ns[key] = now
        self.decide(key, side, features, now)

    def decide(self, key: tuple[Market, str], side: Side, features: BookFeatures, now: int) -> Intent | None:
        """One decision on the current features; an entry is handed to the executor."""
        market, symbol = key
        state = MarketState(
            market, symbol, features.mid, features.spread_bps, features.depth_top1_usdt, features.atr,
            features.values, now, now, liquidity_score=features.values["liq_score"], degraded=features.degraded,
        )  # fmt: skip
        outcome = self.engine.decide(state, side, self._exposure())
        self.decisions += 1
        if outcome.signal.decision is not Decision.ENTER or outcome.intent is None:
            self.skips += 1
            reasons = outcome.signal.reasons
            self.skip_reasons[reasons[-1].split(":")[0] if reasons else "?"] += 1
            return None
        self.signals_entered.append(outcome.signal)
        intent = outcome.intent
        self.intents.append(intent)
        self.entering[key] = intent.intent_id
        self.executor.execute(intent, features.spread_bps, features.mean_spread_bps_1h)
        signal = outcome.signal  # the decision's audit row: written after the order left (see the executor)
        self.executor.defer_ledger_write(lambda ledger: ledger.record_signal(signal))
        return intent

    def _exposure(self) -> Exposure:
        spot = [h.position for (m, _), h in self.held.items() if m is Market.SPOT]
        futures = [h.position for (m, _), h in self.held.items() if m is Market.FUTURES]
        return Exposure(
            float(sum((p.margin for p in spot), Decimal(0))), float(sum((p.margin for p in futures), Decimal(0))),
            len(spot) + sum(1 for m, _ in self.entering if m is Market.SPOT),
            len(futures) + sum(1 for m, _ in self.entering if m is Market.FUTURES),
        )  # fmt: skip

    # ---- venue events -----------------------------------------------------------------------------
    def on_order_update(self, update: OrderUpdate) -> None:
        self.executor.on_order_update(update)

    def _on_fill(self, execution: IntentExecution, record: OrderRecord, fill: Fill) -> None:
        intent = execution.intent
        key = (intent.market, intent.symbol)
        instrument = self.instrument(*key)
        quantity = fill.quantity
        if fill.market is Market.SPOT and fill.side is Side.BUY and fill.fee_asset == instrument.base_asset:
            quantity -= fill.fee  # a spot buy pays its fee in the coin bought: we hold less
        held = self.held.get(key)
        if held is None:
            if intent.reduce_only:
                return  # an exit's fill after the position was already flat in our books
            stop = intent.stop_loss_price
            assert stop is not None  # entries from the decision engine always carry their stop
            leverage = 1 if key[0] is Market.SPOT else self.config.risk.leverage
            fee_rate = Decimal(str(self.config.strategy.taker_fee_rate))
            position = self.manager.open(
                instrument, intent.side, quantity, fill.price, leverage, stop, fee_rate, fill.ts_init
            )
            self.held[key] = _Held(position, intent.intent_id)
        elif intent.intent_id == held.entry_intent_id:
            self.manager.on_entry_fill(held.position, quantity, fill.price)
        else:  # an add-on (same side) or an exit (the other side)
            self._apply(key, held, self.manager.on_fill(held.position, fill.side, quantity, fill.price))
            if held.position.quantity <= 0:
                self._flat(key, held)

    def _on_done(self, execution: IntentExecution) -> None:
        intent = execution.intent
        key = (intent.market, intent.symbol)
        if self.entering.get(key) == intent.intent_id:
            del self.entering[key]

    # ---- position management -----------------------------------------------------------------------
    def _apply(self, key: tuple[Market, str], held: _Held, actions: list[PositionAction]) -> None:
        position = held.position
        for action in actions:
            if isinstance(action, MoveStop):
                self.stop_moves.append(action)
            elif isinstance(action, AddOn):
                held.add_ons += 1
                intent = self._intent(key, held, f"a{held.add_ons}", position.side, action.quantity, OrderType.LIMIT)
                price = self._touch(key, position.side)
                if price is not None and intent is not None:
                    self.executor.execute(intent, None, None)
            else:
                if isinstance(action, ClosePartial):
                    quantity = action.quantity
                else:  # CloseAll: every entry still working stops first
                    quantity = position.quantity
                    self.executor.cancel(held.entry_intent_id)
                self._exit(key, held, quantity, action.reason)

    def _exit(self, key: tuple[Market, str], held: _Held, quantity: Decimal, reason: str) -> None:
        instrument = self.instrument(*key)
        try:
            quantity = instrument.round_quantity(quantity, OrderType.MARKET, Rounding.DOWN)
        except InvalidOrderError:
            return  # dust below the minimum: nothing the exchange would take
        held.exits += 1
        side = held.position.side.opposite()
        intent = self._intent(key, held, f"x{held.exits}", side, quantity, OrderType.MARKET, reduce_only=True)
        if intent is None:
            return
        held.exit_intent_id = intent.intent_id
        self.exits.append(ExitRecord(intent.intent_id, reason, quantity, self.clock.timestamp_ns()))
        self.executor.execute_exit(intent)

    def _intent(
        self,
        key: tuple[Market, str],
        held: _Held,
        suffix: str,
        side: Side,
        quantity: Decimal,
        order_type: OrderType,
        reduce_only: bool = False,
    ) -> Intent | None:
        if quantity <= 0:
            return None
        price = self._touch(key, side) if order_type is OrderType.LIMIT else None
        return Intent(
            IntentId(f"{held.entry_intent_id}-{suffix}"), StrategyId(self.name), key[0], key[1], side, quantity,
            self.clock.timestamp_ns(), order_type, price, reduce_only=reduce_only,
        )  # fmt: skip

    def _touch(self, key: tuple[Market, str], side: Side) -> Decimal | None:
        book = self.context.books.get(key)
        if book is None:
            return None
        return book.best_bid_price if side is Side.BUY else book.best_ask_price

    def _flat(self, key: tuple[Market, str], held: _Held) -> None:
        del self.held[key]
        intent_id, now = held.entry_intent_id, self.clock.timestamp_ns()
        self.executor.defer_ledger_write(lambda ledger: ledger.set_intent_state(intent_id, "CLOSED", now))

    def on_stop(self) -> None:
        self.executor.flush_ledger(final=True)

    def on_timer(self, event: TimeEvent) -> None:
        if event.name != SWEEP_TIMER:
            return
        now = self.clock.timestamp_ns()
        try:
            if self.rules.reload():
                self.log.info("rules reloaded", revision=self.rules.current.revision)
        except (RuleError, OSError) as error:
            self.log.error("rules reload failed; the previous revision stays", error=str(error))
        for key, held in list(self.held.items()):
            position = held.position
            features = self.features.get(key)
            if position.closed:
                self._retry_exit(key, held)
            elif features is not None:
                self._apply(key, held, self.manager.on_mark(position, Decimal(repr(features.mid)), now))

    def _retry_exit(self, key: tuple[Market, str], held: _Held) -> None:
        """A closed-by-rule position still holding quantity after its exit finished: send it again."""
        exit_id = held.exit_intent_id
        execution = self.executor.executions.get(f"{exit_id}#0") if exit_id is not None else None
        if held.position.quantity > 0 and (execution is None or execution.done):
            self._exit(key, held, held.position.quantity, "exit retry: position still open after its exit")


def _model(kind: str, weights: str, intercept: float) -> ModelScorer | None:
    if kind == "none":
        return None
    if kind == "logistic":
        try:
            return LogisticScorer.parse(weights, intercept)
        except ValueError as error:
            raise ConfigurationError(f"pipeline: {error}") from None
    raise ConfigurationError(f"pipeline: model {kind!r}: use none or logistic")


def _rules(config: KestrelConfig) -> RuleBook:
    strategy = config.strategy
    bounds = {
        "size_bounds": (strategy.size_multiplier_min, strategy.size_multiplier_max),
        "tp_bounds": strategy.tp_multiplier_bounds,
        "sl_bounds": strategy.sl_multiplier_bounds,
    }
    if strategy.rules_file is None:
        return RuleBook(empty_rule_set(**bounds))
    return RuleBook.from_file(strategy.rules_file, **bounds)
