"""Performance figures of a backtest (R-BT-6): PnL decomposition, risk ratios, trade statistics.

Definitions (all in the quote asset, USDT):
- net PnL = final equity − starting equity; fees = Σ commissions (spot fees paid in the base asset are
  valued at the fill price); funding = Σ funding received (negative: paid); gross PnL = net + fees −
  funding (what the prices alone gave).
- slippage = Σ side × (fill price − strategy's mid when the order was sent) × quantity: what execution
  cost against the price the decision saw (R-EX-2), positive = paid.
- returns are the equity curve's simple returns per sample; Sharpe = mean / std × √(samples per year),
  Sortino = mean / downside deviation × √(samples per year), risk-free rate 0.
- a round trip runs from flat to flat (a reversal closes one and opens the next); its PnL is the price
  PnL of its fills minus their fees. Win rate = winning / all round trips; profit factor = Σ wins / Σ |losses|.
- turnover = Σ traded notional / mean equity; exposure = share of time with a position.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from kestrel.backtest.driver import BacktestResult
from kestrel.core.enums import Market, Side
from kestrel.core.orders import Fill

YEAR_NS = 365 * 24 * 3600 * 1_000_000_000


@dataclass(frozen=True, slots=True)
class RoundTrip:
    symbol: str
    side: str  # LONG / SHORT
    ts_open: int
    ts_close: int
    quantity: Decimal
    entry_price: Decimal
    exit_price: Decimal
    pnl: Decimal  # net of the fees of its fills


def fee_in_quote(fill: Fill) -> Decimal:
    return fill.fee if fill.fee_asset.endswith("USDT") or fill.fee_asset == "USDT" else fill.fee * fill.price


@dataclass(slots=True)
class _Open:
    ts_open: int
    quantity: Decimal = Decimal(0)  # signed
    cash: Decimal = Decimal(0)  # − Σ signed quantity × price
    fees: Decimal = Decimal(0)
    entry_quantity: Decimal = Decimal(0)
    entry_value: Decimal = Decimal(0)
    exit_value: Decimal = Decimal(0)


def round_trips(fills: list[Fill]) -> list[RoundTrip]:
    """Flat-to-flat trades per symbol (a fill that reverses the position is split at zero)."""
    trips: list[RoundTrip] = []
    open_trades: dict[str, _Open] = {}
    for fill in fills:
        key = f"{fill.market.value}:{fill.symbol}"
        remaining = fill.quantity * fill.side.sign
        fee = fee_in_quote(fill)
        unit_cash = fill.price  # cash per unit of position change
        if fill.market is Market.SPOT and fill.side is Side.BUY and fill.symbol.startswith(fill.fee_asset):
            remaining -= fill.fee  # a spot buy's fee is paid in the coin bought: we hold less for the same cash
            unit_cash = fill.price * fill.quantity / remaining
            fee = Decimal(0)
        while remaining != 0:
            trade = open_trades.setdefault(key, _Open(fill.ts_event))
            adding = trade.quantity == 0 or (trade.quantity > 0) == (remaining > 0)
            part = (
                remaining
                if adding
                else (max(remaining, -trade.quantity) if remaining < 0 else min(remaining, -trade.quantity))
            )
            trade.quantity += part
            trade.cash -= part * unit_cash
            trade.fees += fee * abs(part) / fill.quantity if fee else Decimal(0)
            if adding:
                trade.entry_quantity += abs(part)
                trade.entry_value += abs(part) * fill.price
            else:
                trade.exit_value += abs(part) * fill.price
            remaining -= part
            if trade.quantity == 0:
                trips.append(
                    RoundTrip(
                        symbol=fill.symbol,
                        side="LONG" if part < 0 else "SHORT",
                        ts_open=trade.ts_open,
                        ts_close=fill.ts_event,
                        quantity=trade.entry_quantity,
                        entry_price=trade.entry_value / trade.entry_quantity,
                        exit_price=trade.exit_value / trade.entry_quantity,
                        pnl=trade.cash - trade.fees,
                    )
                )
                del open_trades[key]
    return trips


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def compute_metrics(result: BacktestResult) -> dict[str, float | int | None]:
    equity = np.array([p.equity for p in result.equity], dtype=np.float64)
    times = np.array([p.ts for p in result.equity], dtype=np.int64)
    exposure = np.array([p.gross_exposure for p in result.equity], dtype=np.float64)
    start = result.start_equity
    final = float(equity[-1]) if len(equity) else start
    fees = float(sum((fee_in_quote(f) for f in result.fills), start=Decimal(0)))
    funding = float(sum((amount for _, _, amount in result.funding), start=Decimal(0)))
    net = final - start
    slippage = sum(
        float(f.side.sign) * (float(f.price) - result.mid_at_send[f.client_order_id]) * float(f.quantity)
        for f in result.fills
        if f.client_order_id in result.mid_at_send
    )
    returns = np.diff(equity) / equity[:-1] if len(equity) > 1 else np.zeros(0)
    returns = returns[np.isfinite(returns)]
    intervals = np.diff(times)
    per_year = YEAR_NS / float(np.median(intervals)) if len(intervals) and np.median(intervals) > 0 else 0.0
    std = float(returns.std(ddof=1)) if len(returns) > 1 else 0.0
    downside = returns[returns < 0]
    downside_dev = float(np.sqrt(np.mean(downside**2))) if len(downside) else 0.0
    mean = float(returns.mean()) if len(returns) else 0.0
    peak = np.maximum.accumulate(equity) if len(equity) else equity
    drawdowns = 1.0 - equity / peak if len(equity) else equity
    trips = round_trips(result.fills)
    wins = [float(t.pnl) for t in trips if t.pnl > 0]
    losses = [float(t.pnl) for t in trips if t.pnl <= 0]
    notional = float(sum((f.price * f.quantity for f in result.fills), start=Decimal(0)))
    mean_equity = float(equity.mean()) if len(equity) else start
    durations = np.diff(times, append=times[-1]) if len(times) else times
    exposed_time = float(durations[exposure > 0].sum()) if len(times) else 0.0
    total_time = float(times[-1] - times[0]) if len(times) > 1 else 0.0
    return {
        "start_equity": start,
        "final_equity": final,
        "pnl_net": net,
        "pnl_gross": net + fees - funding,
        "fees": fees,
        "funding": funding,
        "slippage": slippage,
        "return_pct": net / start * 100 if start else None,
        "sharpe": _finite(mean / std * math.sqrt(per_year)) if std > 0 else None,
        "sortino": _finite(mean / downside_dev * math.sqrt(per_year)) if downside_dev > 0 else None,
        "max_drawdown_pct": float(drawdowns.max() * 100) if len(drawdowns) else 0.0,
        "max_drawdown": float((peak - equity).max()) if len(equity) else 0.0,
        "trade_count": len(trips),
        "win_rate": len(wins) / len(trips) if trips else None,
        "profit_factor": _finite(sum(wins) / -sum(losses)) if losses and sum(losses) < 0 else None,
        "turnover": notional / mean_equity if mean_equity else None,
        "traded_notional": notional,
        "fee_share": fees / abs(net + fees - funding) if net + fees - funding else None,
        "exposure": exposed_time / total_time if total_time else 0.0,
        "fill_count": len(result.fills),
        "order_count": len(result.orders),
        "liquidations": result.liquidations,
        "rows": result.rows,
        "strategy_callbacks": result.callbacks,
        "wall_seconds": result.wall_seconds,
        "rows_per_second": result.rows / result.wall_seconds if result.wall_seconds else None,
    }
