"""Pre-trade risk limits of R-RK-1 and R-RK-2, evaluated on every entry.

R-RK-1: per-trade max loss (% of equity, measured at the stop), daily drawdown stop, capital in use cap,
leverage cap, max consecutive losses, drawdown kill switch (full stop: flatten everything).
R-RK-2: minimum interval between entries per symbol, max entries per rolling 24 h, throttle in high
volatility, low-liquidity symbols down-weighted or disabled, circuit breaker on violent moves.

Everything is driven by timestamps passed in (ns, from the Clock), so a backtest and a live run make
the same decisions on the same inputs. Exits (reduce-only orders) are never blocked by these limits:
a risk system that stops you from closing is a risk.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from kestrel.config.models import RiskConfig
from kestrel.core.enums import Market

NANOS_PER_SECOND = 1_000_000_000
DAY_NS = 86_400 * NANOS_PER_SECOND
_HUNDRED = Decimal(100)


class RiskRule(StrEnum):
    KILL_SWITCH = "kill_switch"
    DAILY_DRAWDOWN = "daily_drawdown"
    MAX_LOSS_PER_TRADE = "max_loss_per_trade"
    CAPITAL_IN_USE = "capital_in_use"
    LEVERAGE = "leverage"
    CONSECUTIVE_LOSSES = "consecutive_losses"
    MIN_TRADE_INTERVAL = "min_trade_interval"
    MAX_TRADES_24H = "max_trades_24h"
    CIRCUIT_BREAKER = "circuit_breaker"
    LOW_LIQUIDITY = "low_liquidity"


@dataclass(frozen=True, slots=True)
class EntryRequest:
    """What the sizing step proposes. `margin` is the capital it ties up (spot: the notional)."""

    market: Market
    symbol: str
    notional: Decimal
    margin: Decimal
    leverage: int
    entry_price: Decimal
    stop_price: Decimal
    quantity: Decimal
    liquidity_score: float = 1.0
    high_volatility: bool = False


@dataclass(frozen=True, slots=True)
class RiskRejection:
    """An event: an entry refused by a limit (recorded in the ledger and shown in the dashboard)."""

    rule: RiskRule
    market: Market
    symbol: str
    detail: str
    ts_event: int


@dataclass(frozen=True, slots=True)
class RiskDecision:
    approved: bool
    rejection: RiskRejection | None = None
    size_multiplier: float = 1.0  # < 1 when liquidity down-weights the entry


@dataclass(frozen=True, slots=True)
class TradeResult:
    """A closed trade's net PnL (after fees and funding), for the consecutive-loss counter."""

    net_pnl: Decimal
    ts_closed: int


@dataclass
class _SymbolState:
    last_entry_ns: int | None = None
    prices: deque[tuple[int, float]] = field(default_factory=deque)
    halted_until_ns: int = 0


class RiskEngine:
    """Holds the account-level risk state and answers `check_entry`; `on_*` methods feed it."""

    def __init__(self, config: RiskConfig, equity: Decimal, ts_start: int) -> None:
        if equity <= 0:
            raise ValueError("starting equity must be positive")
        self.config = config
        self.equity = equity
        self.peak_equity = equity
        self.day_start_equity = equity
        self.day_start_ns = ts_start - ts_start % DAY_NS  # UTC day boundary
        self.capital_in_use = Decimal(0)
        self.consecutive_losses = 0
        self.kill_switch_engaged = False
        self.kill_switch_reason: str | None = None
        self.daily_stop_engaged = False
        self._entries_24h: deque[int] = deque()
        self._symbols: dict[tuple[Market, str], _SymbolState] = {}

    # ---- state feeds --------------------------------------------------------------------------------
    def on_equity(self, equity: Decimal, ts: int) -> RiskRejection | None:
        """New account equity (marked to market). Returns a kill-switch event when it trips."""
        self._roll_day(ts)
        self.equity = equity
        self.peak_equity = max(self.peak_equity, equity)
        daily_loss_pct = (self.day_start_equity - equity) / self.day_start_equity * _HUNDRED
        if daily_loss_pct >= Decimal(str(self.config.daily_drawdown_stop_pct)):
            self.daily_stop_engaged = True
        drawdown_pct = (self.peak_equity - equity) / self.peak_equity * _HUNDRED
        if not self.kill_switch_engaged and drawdown_pct > Decimal(str(self.config.kill_switch_drawdown_pct)):
            detail = f"drawdown {drawdown_pct:.2f}% > {self.config.kill_switch_drawdown_pct}%"
            self.engage_kill_switch(detail)
            return RiskRejection(RiskRule.KILL_SWITCH, Market.FUTURES, "*", detail, ts)
        return None

    def on_capital_in_use(self, capital: Decimal) -> None:
        self.capital_in_use = capital

    def on_trade_closed(self, result: TradeResult) -> None:
        self.consecutive_losses = self.consecutive_losses + 1 if result.net_pnl < 0 else 0

    def on_price(self, market: Market, symbol: str, price: float, ts: int) -> RiskRejection | None:
        """Feed prices for the violent-move circuit breaker; returns an event when it trips."""
        state = self._symbol(market, symbol)
        window_ns = int(self.config.circuit_breaker_window_s * NANOS_PER_SECOND)
        prices = state.prices
        prices.append((ts, price))
        while prices and prices[0][0] < ts - window_ns:
            prices.popleft()
        low = min(p for _, p in prices)
        high = max(p for _, p in prices)
        move_pct = (high - low) / low * 100 if low > 0 else 0.0
        if move_pct > self.config.circuit_breaker_move_pct and state.halted_until_ns <= ts:
            state.halted_until_ns = ts + int(self.config.circuit_breaker_cooldown_s * NANOS_PER_SECOND)
            return RiskRejection(
                RiskRule.CIRCUIT_BREAKER, market, symbol,
                f"move {move_pct:.2f}% in {self.config.circuit_breaker_window_s:g}s", ts,
            )  # fmt: skip
        return None

    def engage_kill_switch(self, reason: str) -> None:
        """Manual or automatic full stop: no new entries until `reset_kill_switch`."""
        self.kill_switch_engaged = True
        self.kill_switch_reason = reason

    def reset_kill_switch(self) -> None:
        self.kill_switch_engaged = False
        self.kill_switch_reason = None
        self.peak_equity = self.equity

    def reset_consecutive_losses(self) -> None:
        self.consecutive_losses = 0

    # ---- the check -------------------------------------------------------------------------------
    def check_entry(self, request: EntryRequest, ts: int) -> RiskDecision:
        """Every limit, in order of severity; the first that fails rejects the entry."""
        self._roll_day(ts)
        for rule, problem in self._violations(request, ts):
            if problem is not None:
                return RiskDecision(False, RiskRejection(rule, request.market, request.symbol, problem, ts))
        multiplier = 1.0 if request.liquidity_score >= 1.0 else request.liquidity_score
        return RiskDecision(True, None, multiplier)

    def check_order(self, market: Market, symbol: str, notional: Decimal, leverage: int, ts: int) -> RiskDecision:
        """The account-level limits for an order that is not a sized entry (a strategy placing orders
        itself): kill switch, daily stop, consecutive losses, circuit breaker, leverage, capital in use,
        entries per 24 h. Reduce-only orders are never checked (closing must always be possible)."""
        self._roll_day(ts)
        margin = notional / max(leverage, 1)
        request = EntryRequest(market, symbol, notional, margin, leverage, Decimal(1), Decimal(1), Decimal(0))
        checks = {
            RiskRule.KILL_SWITCH, RiskRule.DAILY_DRAWDOWN, RiskRule.CONSECUTIVE_LOSSES, RiskRule.CIRCUIT_BREAKER,
            RiskRule.LEVERAGE, RiskRule.CAPITAL_IN_USE, RiskRule.MAX_TRADES_24H,
        }  # fmt: skip
        for rule, problem in self._violations(request, ts):
            if rule in checks and problem is not None:
                return RiskDecision(False, RiskRejection(rule, market, symbol, problem, ts))
        return RiskDecision(True)

    def record_entry(self, market: Market, symbol: str, ts: int) -> None:
        """An approved entry was sent: counts toward the interval and the 24 h limits."""
        self._symbol(market, symbol).last_entry_ns = ts
        self._entries_24h.append(ts)

    def _violations(self, request: EntryRequest, ts: int) -> list[tuple[RiskRule, str | None]]:
        config = self.config
        return [
            (RiskRule.KILL_SWITCH, f"kill switch: {self.kill_switch_reason}" if self.kill_switch_engaged else None),
            (RiskRule.DAILY_DRAWDOWN, "daily drawdown stop reached" if self.daily_stop_engaged else None),
            (RiskRule.CONSECUTIVE_LOSSES, self._consecutive_problem()),
            (RiskRule.CIRCUIT_BREAKER, self._circuit_problem(request, ts)),
            (RiskRule.LOW_LIQUIDITY, self._liquidity_problem(request)),
            (RiskRule.LEVERAGE, f"leverage {request.leverage} > cap {config.max_leverage}"
             if request.leverage > config.max_leverage else None),
            (RiskRule.MAX_LOSS_PER_TRADE, self._loss_problem(request)),
            (RiskRule.CAPITAL_IN_USE, self._capital_problem(request)),
            (RiskRule.MIN_TRADE_INTERVAL, self._interval_problem(request, ts)),
            (RiskRule.MAX_TRADES_24H, self._frequency_problem(ts)),
        ]  # fmt: skip

    def _consecutive_problem(self) -> str | None:
        if self.consecutive_losses >= self.config.max_consecutive_losses:
            return f"{self.consecutive_losses} consecutive losses (max {self.config.max_consecutive_losses})"
        return None

    def _circuit_problem(self, request: EntryRequest, ts: int) -> str | None:
        halted_until = self._symbol(request.market, request.symbol).halted_until_ns
        return f"halted by circuit breaker until {halted_until}" if halted_until > ts else None

    def _liquidity_problem(self, request: EntryRequest) -> str | None:
        if request.liquidity_score < self.config.min_liquidity_score:
            return f"liquidity score {request.liquidity_score:.2f} < {self.config.min_liquidity_score}"
        return None

    def _loss_problem(self, request: EntryRequest) -> str | None:
        loss_at_stop = abs(request.entry_price - request.stop_price) * request.quantity
        limit = self.equity * Decimal(str(self.config.max_loss_per_trade_pct)) / _HUNDRED
        if loss_at_stop > limit:
            return f"loss at stop {loss_at_stop:.4f} > {self.config.max_loss_per_trade_pct}% of equity ({limit:.4f})"
        return None

    def _capital_problem(self, request: EntryRequest) -> str | None:
        cap = self.equity * Decimal(str(self.config.max_capital_in_use_pct)) / _HUNDRED
        if self.capital_in_use + request.margin > cap:
            return f"capital in use {self.capital_in_use + request.margin:.4f} > cap {cap:.4f}"
        return None

    def _interval_problem(self, request: EntryRequest, ts: int) -> str | None:
        last = self._symbol(request.market, request.symbol).last_entry_ns
        if last is None:
            return None
        interval_s = self.config.min_trade_interval_s
        if request.high_volatility:
            interval_s *= self.config.high_volatility_throttle
        elapsed_s = (ts - last) / NANOS_PER_SECOND
        if elapsed_s < interval_s:
            return f"{elapsed_s:.1f}s since the last entry < {interval_s:g}s"
        return None

    def _frequency_problem(self, ts: int) -> str | None:
        while self._entries_24h and self._entries_24h[0] <= ts - DAY_NS:
            self._entries_24h.popleft()
        if len(self._entries_24h) >= self.config.max_trades_per_24h:
            return f"{len(self._entries_24h)} entries in 24 h (max {self.config.max_trades_per_24h})"
        return None

    # ---- helpers ------------------------------------------------------------------------------------
    def _symbol(self, market: Market, symbol: str) -> _SymbolState:
        key = (market, symbol)
        state = self._symbols.get(key)
        if state is None:
            state = self._symbols[key] = _SymbolState()
        return state

    def _roll_day(self, ts: int) -> None:
        day = ts - ts % DAY_NS
        if day > self.day_start_ns:
            self.day_start_ns = day
            self.day_start_equity = self.equity
            self.daily_stop_engaged = False
