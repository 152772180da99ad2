"""The position manager of R-PM-1, as pure decisions on marks.

For one isolated futures position (or a spot holding, leverage 1) it answers, on every mark price and on
the periodic sweep: add on at ROE ≥ 5 % and ≥ 10 % (at most two, re-averaging the entry), move the stop
to net breakeven at ROE ≥ 10 %, lock +10 % net of the margin at ROE ≥ 20 %, close the first entry's
quantity at ROE ≥ 12 %, close everything after the maximum holding time. ROE = unrealized PnL / isolated
margin. "Net" includes taker fees on both legs. Each rule fires once; stops only ever tighten.

The manager returns `Action`s; the node executes them through the router and feeds fills back with
`on_fill`. Keeping decisions pure makes them testable on scripted price paths and identical in
backtest, paper and live.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from kestrel.config.models import PositionConfig
from kestrel.core.enums import Side
from kestrel.core.instrument import Instrument, Rounding

_HUNDRED = Decimal(100)
NANOS_PER_SECOND = 1_000_000_000


@dataclass(frozen=True, slots=True)
class AddOn:
    quantity: Decimal
    roe_pct: Decimal


@dataclass(frozen=True, slots=True)
class MoveStop:
    stop_price: Decimal
    reason: str  # "breakeven" or "lock"


@dataclass(frozen=True, slots=True)
class ClosePartial:
    quantity: Decimal
    reason: str


@dataclass(frozen=True, slots=True)
class CloseAll:
    reason: str


Action = AddOn | MoveStop | ClosePartial | CloseAll


@dataclass
class ManagedPosition:
    instrument: Instrument
    side: Side
    leverage: int
    first_quantity: Decimal
    quantity: Decimal
    average_entry: Decimal
    margin: Decimal  # isolated wallet: Σ entry notional / leverage
    stop_price: Decimal
    fee_rate: Decimal
    ts_opened: int
    add_ons_done: int = 0
    breakeven_done: bool = False
    lock_done: bool = False
    partial_done: bool = False
    closed: bool = False
    fees_paid: Decimal = Decimal(0)
    history: list[str] = field(default_factory=list)

    def unrealized_pnl(self, mark: Decimal) -> Decimal:
        return (mark - self.average_entry) * self.quantity * self.side.sign

    def roe_pct(self, mark: Decimal) -> Decimal:
        return self.unrealized_pnl(mark) / self.margin * _HUNDRED if self.margin > 0 else Decimal(0)


class PositionManager:
    def __init__(self, config: PositionConfig) -> None:
        self.config = config

    def open(
        self,
        instrument: Instrument,
        side: Side,
        quantity: Decimal,
        entry_price: Decimal,
        leverage: int,
        stop_price: Decimal,
        fee_rate: Decimal,
        ts: int,
    ) -> ManagedPosition:
        margin = quantity * entry_price / leverage
        fee = quantity * entry_price * fee_rate
        return ManagedPosition(
            instrument, side, leverage, quantity, quantity, entry_price, margin, stop_price, fee_rate, ts,
            fees_paid=fee,
        )  # fmt: skip

    def on_mark(self, position: ManagedPosition, mark: Decimal, ts: int) -> list[Action]:
        """Decisions for a new mark price (also called by the sweep with the last mark)."""
        if position.closed:
            return []
        held_s = (ts - position.ts_opened) / NANOS_PER_SECOND
        if held_s >= self.config.max_holding_s:
            position.closed = True
            return [CloseAll(f"max holding time {self.config.max_holding_s:g}s reached")]
        if self._stopped_out(position, mark):
            position.closed = True
            return [CloseAll(f"stop {position.stop_price} touched at {mark}")]
        roe = position.roe_pct(mark)
        actions: list[Action] = []
        levels = self.config.add_on_roe_pct
        if position.add_ons_done < len(levels) and roe >= Decimal(str(levels[position.add_ons_done])):
            quantity = self._add_on_quantity(position)
            if quantity > 0:
                actions.append(AddOn(quantity, roe))
        if not position.lock_done and roe >= Decimal(str(self.config.lock_roe_pct)):
            position.lock_done = position.breakeven_done = True
            actions.append(self._tighten(position, Decimal(str(self.config.lock_net_pct)), "lock"))
        elif not position.breakeven_done and roe >= Decimal(str(self.config.breakeven_roe_pct)):
            position.breakeven_done = True
            actions.append(self._tighten(position, Decimal(0), "breakeven"))
        if not position.partial_done and roe >= Decimal(str(self.config.partial_close_roe_pct)):
            position.partial_done = True
            partial = min(position.first_quantity, position.quantity)
            if partial < position.quantity:
                actions.append(ClosePartial(partial, f"ROE {roe:.2f}% ≥ {self.config.partial_close_roe_pct}%"))
        return actions

    def on_entry_fill(self, position: ManagedPosition, quantity: Decimal, price: Decimal) -> None:
        """A later fill of the opening entry itself (a TWAP slice, a taker remainder): the first entry
        grows and its average re-prices; unlike an add-on it uses none of the add-on budget."""
        position.fees_paid += quantity * price * position.fee_rate
        total = position.quantity + quantity
        position.average_entry = (position.average_entry * position.quantity + price * quantity) / total
        position.quantity = total
        position.first_quantity += quantity
        position.margin += quantity * price / position.leverage
        position.history.append(f"entry {quantity} @ {price}")

    def on_fill(self, position: ManagedPosition, side: Side, quantity: Decimal, price: Decimal) -> list[Action]:
        """Account an executed action: add-ons re-average the entry (and re-tighten a breakeven or lock
        stop already in place, so its guarantee holds for the larger position); reductions keep it."""
        fee = quantity * price * position.fee_rate
        position.fees_paid += fee
        if side is position.side:
            total = position.quantity + quantity
            position.average_entry = (position.average_entry * position.quantity + price * quantity) / total
            position.quantity = total
            position.margin += quantity * price / position.leverage
            position.add_ons_done += 1
            position.history.append(f"add-on {quantity} @ {price}")
            if position.lock_done:
                return [self._tighten(position, Decimal(str(self.config.lock_net_pct)), "lock")]
            if position.breakeven_done:
                return [self._tighten(position, Decimal(0), "breakeven")]
        else:
            reduced = min(quantity, position.quantity)
            if reduced > 0:  # a reduction of an already flat position changes nothing (no 0 / 0)
                position.margin -= position.margin * reduced / position.quantity
                position.quantity -= reduced
            position.history.append(f"reduce {reduced} @ {price}")
            if position.quantity == 0:
                position.closed = True
        return []

    # ---- helpers ---------------------------------------------------------------------------------------
    @staticmethod
    def _stopped_out(position: ManagedPosition, mark: Decimal) -> bool:
        return mark <= position.stop_price if position.side is Side.BUY else mark >= position.stop_price

    def _add_on_quantity(self, position: ManagedPosition) -> Decimal:
        raw = position.first_quantity * Decimal(str(self.config.add_on_fraction))
        step = position.instrument.step_size
        return (raw // step) * step if step > 0 else raw

    def _tighten(self, position: ManagedPosition, net_pct: Decimal, reason: str) -> MoveStop:
        """The stop price at which closing nets `net_pct` % of the margin after all fees."""
        sign = position.side.sign
        quantity = position.quantity
        target = net_pct / _HUNDRED * position.margin
        fee = position.fee_rate
        entry = position.average_entry
        # closing at S: sign·(S − entry)·q − fees_paid_so_far − fee·S·q = target
        numerator = target + position.fees_paid + sign * entry * quantity
        stop = numerator / (quantity * (sign - fee))
        rounding = Rounding.UP if sign > 0 else Rounding.DOWN  # never lock less than the target
        stop = position.instrument.round_price(stop, rounding)
        improves = stop > position.stop_price if sign > 0 else stop < position.stop_price
        if improves:
            position.stop_price = stop
            position.history.append(f"stop → {stop} ({reason})")
        return MoveStop(position.stop_price, reason)
