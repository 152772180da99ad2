"""The bar fast path (R-BT-7): compiled SMA-crossover backtests on klines for parameter sweeps.

Signals are vectorised (integer rolling sums of closes in ticks, compared exactly, as `SmaCross` does);
execution is one compiled loop that applies the event-driven engine's bar-mode rules in the same order,
with the money arithmetic of `kestrel.matching.formulas` (the same source, compiled for float64) and the
engine's fee schedule, leverage brackets and funding rules:

  at each bar: funding due by the open (mark = last close) → the pending market order fills at the open
  (taker fee) → funding due within the bar → the close is the mark: liquidation check (maintenance margin
  by bracket, liquidation fee, wallet floored at zero) → the strategy decides at the close; the order is
  refused when margin, the bracket cap or the minimum notional would be broken (as -2019 / -2027 / -4164).

So its trades equal the event-driven engine's on the same klines (a test checks it); its money is float64
where the engine's is Decimal, which the test bounds. USD-M futures only.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import numpy as np
from numba import njit

from kestrel.backtest.data import Candles
from kestrel.core.enums import LiquiditySide, Market
from kestrel.core.errors import ConfigurationError
from kestrel.core.instrument import Instrument
from kestrel.matching.engine import EngineSettings
from kestrel.matching.formulas import (
    closing_quantity_compiled,
    fee_compiled,
    funding_payment_compiled,
    maintenance_margin_compiled,
    next_entry_price_compiled,
    realized_pnl_compiled,
)

NO_SIGNAL = 2


@dataclass(frozen=True, slots=True)
class FuturesRules:
    """The engine's rules for one USD-M symbol, as floats for the compiled loop."""

    tick_size: float
    taker_rate: float
    leverage: int
    wallet: float
    floors: np.ndarray
    ratios: np.ndarray
    cums: np.ndarray
    max_notional: float
    min_notional: float
    liquidation_fee_rate: float

    @classmethod
    def of(cls, instrument: Instrument, settings: EngineSettings, leverage: int, wallet: Decimal) -> FuturesRules:
        if instrument.market is not Market.FUTURES:
            raise ConfigurationError("the bar fast path models USD-M futures")
        table = settings.brackets.table(instrument.symbol)
        if not 1 <= leverage <= table.max_leverage:
            raise ConfigurationError(f"leverage {leverage} is outside 1..{table.max_leverage} for {instrument.symbol}")
        floors, ratios, cums = table.as_arrays()
        fee_rate = instrument.liquidation_fee_rate
        return cls(
            tick_size=float(instrument.tick_size),
            taker_rate=float(settings.fees.rate(Market.FUTURES, LiquiditySide.TAKER)),
            leverage=leverage,
            wallet=float(wallet),
            floors=np.array(floors),
            ratios=np.array(ratios),
            cums=np.array(cums),
            max_notional=float(table.max_notional(leverage)),
            min_notional=float(instrument.notional.minimum) if instrument.notional else 0.0,
            liquidation_fee_rate=float(fee_rate if fee_rate is not None else settings.liquidation_fee_rate),
        )


@dataclass(frozen=True, slots=True)
class FastResult:
    """Fills (exchange time, signed quantity, price, fee, realised PnL, 1 if a liquidation) and the
    equity at every close."""

    fill_ts: np.ndarray
    fill_quantity: np.ndarray
    fill_price: np.ndarray
    fill_fee: np.ndarray
    fill_realized: np.ndarray
    fill_liquidation: np.ndarray
    equity: np.ndarray
    wallet: float
    funding: float
    rejected: int

    @property
    def fill_count(self) -> int:
        return int(self.fill_ts.shape[0])


@njit(cache=True)
def _cross_signals(ticks: np.ndarray, fast: int, slow: int, down_target: int) -> np.ndarray:
    count = ticks.shape[0]
    signals = np.full(count, NO_SIGNAL, dtype=np.int8)
    fast_sum = 0
    slow_sum = 0
    previous = 0
    for bar in range(count):
        fast_sum += ticks[bar]
        slow_sum += ticks[bar]
        if bar >= fast:
            fast_sum -= ticks[bar - fast]
        if bar >= slow:
            slow_sum -= ticks[bar - slow]
        if bar < slow - 1:
            continue
        difference = fast_sum * slow - slow_sum * fast  # sign of fast − slow, exactly (integers)
        if bar >= slow:
            if previous < 0 < difference:
                signals[bar] = 1
            elif previous > 0 > difference:
                signals[bar] = down_target
        previous = difference
    return signals


def sma_cross_signals(close_ticks: np.ndarray, fast: int, slow: int, long_only: bool) -> np.ndarray:
    """Per bar: the target position sign decided at its close (1, 0, −1), or NO_SIGNAL. The running
    sums are integers (closes in ticks), so they are exact however long the series."""
    if not 0 < fast < slow:
        raise ConfigurationError("need 0 < fast < slow")
    return _cross_signals(np.ascontiguousarray(close_ticks, dtype=np.int64), fast, slow, 0 if long_only else -1)


@njit(cache=True)
def _liquidation(
    position: float,
    entry: float,
    wallet: float,
    mark: float,
    floors: np.ndarray,
    ratios: np.ndarray,
    cums: np.ndarray,
    rate: float,
) -> tuple[bool, float, float, float]:
    """(liquidated, wallet after, fee, realised) of the engine's cross liquidation check at `mark`."""
    notional = abs(position) * mark
    if position == 0.0 or wallet + (mark - entry) * position > maintenance_margin_compiled(
        notional, floors, ratios, cums
    ):
        return False, wallet, 0.0, 0.0
    fee = fee_compiled(notional, rate)
    realized = realized_pnl_compiled(position, entry, mark, abs(position))
    return True, max(wallet + realized - fee, 0.0), fee, realized


@njit(cache=True)
def _simulate(
    open_: np.ndarray,
    close: np.ndarray,
    open_time: np.ndarray,
    close_time: np.ndarray,
    signals: np.ndarray,
    unit: float,
    tick_size: float,
    taker_rate: float,
    leverage: float,
    wallet: float,
    floors: np.ndarray,
    ratios: np.ndarray,
    cums: np.ndarray,
    max_notional: float,
    min_notional: float,
    liquidation_rate: float,
    funding_time: np.ndarray,
    funding_rate: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, float, float, int]:
    n = open_.shape[0]
    capacity = 2 * int((signals != NO_SIGNAL).sum()) + 2  # a liquidation needs a fill that opened the position
    fills = np.zeros((capacity, 6))
    times = np.zeros(capacity, dtype=np.int64)
    count = 0
    equity = np.zeros(n)
    position = 0.0
    entry = 0.0
    pending = 0.0  # signed quantity of the market order waiting for the next open
    mark = 0.0
    funded = 0.0
    rejected = 0
    next_funding = 0
    top_ratio = ratios.max()
    for bar in range(n):
        for stage in range(2):
            # funding due by the open (stage 0), or inside the bar before its close (stage 1, after the
            # open's fill); the mark is the last close; a liquidation check follows each settlement
            while next_funding < funding_time.shape[0] and (
                funding_time[next_funding] <= open_time[bar]
                if stage == 0
                else funding_time[next_funding] < close_time[bar]
            ):
                if position != 0.0 and mark > 0.0:
                    payment = funding_payment_compiled(position, mark, funding_rate[next_funding])
                    funded += payment
                    wallet = max(wallet + payment, 0.0)
                    hit, wallet, fee, realized = _liquidation(
                        position, entry, wallet, mark, floors, ratios, cums, liquidation_rate
                    )
                    if hit:  # the engine also expires the open orders of a liquidated symbol
                        times[count] = funding_time[next_funding]
                        fills[count, 0] = bar
                        fills[count, 1] = -position
                        fills[count, 2] = mark
                        fills[count, 3] = fee
                        fills[count, 4] = realized
                        fills[count, 5] = 1.0
                        count += 1
                        position = 0.0
                        entry = 0.0
                        pending = 0.0
                next_funding += 1
            if stage == 1 or pending == 0.0:
                continue
            price = round(open_[bar] / tick_size) * tick_size
            fee = fee_compiled(price * abs(pending), taker_rate)
            closed = closing_quantity_compiled(position, pending)
            realized = realized_pnl_compiled(position, entry, price, closed) if closed > 0.0 else 0.0
            entry = next_entry_price_compiled(position, entry, price, pending)
            position += pending
            wallet = max(wallet + realized - fee, 0.0)
            times[count] = open_time[bar]
            fills[count, 0] = bar
            fills[count, 1] = pending
            fills[count, 2] = price
            fills[count, 3] = fee
            fills[count, 4] = realized
            count += 1
            pending = 0.0
        mark = close[bar]  # marks are not on the tick grid (the engine keeps them as given)
        hit = False
        # maintenance margin never exceeds notional × the largest ratio: skip the bracket lookup when clear
        if position != 0.0 and wallet + (mark - entry) * position <= abs(position) * mark * top_ratio:
            hit, wallet, fee, realized = _liquidation(
                position, entry, wallet, mark, floors, ratios, cums, liquidation_rate
            )
        if hit:
            times[count] = close_time[bar]
            fills[count, 0] = bar
            fills[count, 1] = -position
            fills[count, 2] = mark
            fills[count, 3] = fee
            fills[count, 4] = realized
            fills[count, 5] = 1.0
            count += 1
            position = 0.0
            entry = 0.0
        if signals[bar] != 2:
            delta = signals[bar] * unit - position
            if delta != 0.0:
                reducing = position != 0.0 and (position > 0.0) != (delta > 0.0)
                opening = abs(delta) - (min(abs(delta), abs(position)) if reducing else 0.0)
                ok = abs(delta) * mark >= min_notional
                if ok and opening > 0.0:
                    size_after = (0.0 if reducing else abs(position)) + opening
                    available = wallet + (mark - entry) * position - abs(position) * mark / leverage
                    ok = size_after * mark <= max_notional and mark * opening / leverage <= available
                if ok:
                    pending = delta
                else:
                    rejected += 1
        equity[bar] = wallet + (mark - entry) * position
    result = fills[:count]
    return (
        times[:count],
        result[:, 1],
        result[:, 2],
        result[:, 3],
        result[:, 4],
        result[:, 5],
        equity,
        wallet,
        funded,
        rejected,
    )


def sma_cross_fast(
    candles: Candles,
    fast: int,
    slow: int,
    quantity: Decimal,
    rules: FuturesRules,
    long_only: bool = True,
    funding: tuple[np.ndarray, np.ndarray] | None = None,
) -> FastResult:
    """Backtest SmaCross on `candles` in one compiled pass."""
    close_ticks = np.round(candles.close / rules.tick_size).astype(np.int64)
    signals = sma_cross_signals(close_ticks, fast, slow, long_only)
    funding_times, rates = funding if funding is not None else (np.zeros(0, dtype=np.int64), np.zeros(0))
    close_time = candles.open_time_ns + candles.interval_ns - 1_000_000
    times_out, qty, price, fee, realized, liquidation, equity, wallet, funded, rejected = _simulate(
        candles.open, candles.close, candles.open_time_ns, close_time, signals, float(quantity), rules.tick_size,
        rules.taker_rate, float(rules.leverage), rules.wallet, rules.floors, rules.ratios, rules.cums,
        rules.max_notional, rules.min_notional, rules.liquidation_fee_rate,
        funding_times.astype(np.int64), rates.astype(np.float64),
    )  # fmt: skip
    return FastResult(
        times_out, qty, price, fee, realized, liquidation, equity, float(wallet), float(funded), int(rejected)
    )


def sweep(
    candles: Candles,
    grid: list[tuple[int, int]],
    quantity: Decimal,
    rules: FuturesRules,
    long_only: bool = True,
    funding: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[dict[str, float | int]]:
    """One fast backtest per (fast, slow) pair: final equity, PnL, fills, fees, max drawdown."""
    rows = []
    for fast, slow in grid:
        result = sma_cross_fast(candles, fast, slow, quantity, rules, long_only, funding)
        equity = result.equity
        peak = np.maximum.accumulate(equity) if len(equity) else equity
        drawdown = float(((peak - equity) / np.where(peak > 0, peak, 1)).max()) if len(equity) else 0.0
        rows.append(
            {
                "fast": fast,
                "slow": slow,
                "final_equity": float(equity[-1]) if len(equity) else rules.wallet,
                "pnl": (float(equity[-1]) if len(equity) else rules.wallet) - rules.wallet,
                "fills": result.fill_count,
                "fees": float(result.fill_fee.sum()),
                "funding": result.funding,
                "max_drawdown_pct": drawdown * 100,
                "rejected": result.rejected,
            }
        )
    return rows
