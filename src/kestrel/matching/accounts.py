"""Accounts of the simulated venue: spot balances (free / locked) and USDⓈ-M futures margin.

All money is Decimal. Every change goes through a method here, so the invariants hold in one place:
spot `free` and `locked` never go negative (orders lock what they may spend; fills release the lock
first), and a futures wallet never goes negative (a liquidation's loss beyond the margin is recorded as
insurance-fund cover, as on the exchange).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from kestrel.core.enums import MarginType, Market, Side
from kestrel.core.errors import InsufficientFunds, InvalidOrderError
from kestrel.core.venue import Balance, PositionSnapshot
from kestrel.matching import formulas
from kestrel.matching.margin import BracketRegistry

ZERO = Decimal(0)
INSUFFICIENT_BALANCE = "Account has insufficient balance for requested action."


class Lock:
    """Funds an open spot order (or an OCO list's two legs together) holds."""

    __slots__ = ("amount", "asset")

    def __init__(self, asset: str, amount: Decimal) -> None:
        self.asset = asset
        self.amount = amount


class SpotAccount:
    def __init__(self, balances: Mapping[str, Decimal] | None = None) -> None:
        self._free: dict[str, Decimal] = {}
        self._locked: dict[str, Decimal] = {}
        for asset, amount in (balances or {}).items():
            self.deposit(asset, amount)

    def free(self, asset: str) -> Decimal:
        return self._free.get(asset, ZERO)

    def locked(self, asset: str) -> Decimal:
        return self._locked.get(asset, ZERO)

    def assets(self) -> list[str]:
        return sorted(set(self._free) | set(self._locked))

    def deposit(self, asset: str, amount: Decimal) -> None:
        if amount < 0:
            raise ValueError("a deposit must not be negative")
        self._free[asset] = self.free(asset) + amount
        self._locked.setdefault(asset, ZERO)

    def lock(self, asset: str, amount: Decimal) -> Lock:
        if amount < 0:
            raise ValueError("cannot lock a negative amount")
        if amount > self.free(asset):
            raise InsufficientFunds(INSUFFICIENT_BALANCE, -2010)
        self._free[asset] = self.free(asset) - amount
        self._locked[asset] = self.locked(asset) + amount
        return Lock(asset, amount)

    def release(self, lock: Lock, amount: Decimal) -> None:
        """Move `amount` (at most what the lock still holds) from locked back to free."""
        amount = min(amount, lock.amount)
        if amount <= 0:
            return
        lock.amount -= amount
        self._locked[lock.asset] = self.locked(lock.asset) - amount
        self._free[lock.asset] = self.free(lock.asset) + amount

    def debit(self, asset: str, amount: Decimal) -> None:
        if amount > self.free(asset):
            raise InsufficientFunds(INSUFFICIENT_BALANCE, -2010)
        self._free[asset] = self.free(asset) - amount

    def credit(self, asset: str, amount: Decimal) -> None:
        self._free[asset] = self.free(asset) + amount
        self._locked.setdefault(asset, ZERO)

    def balance(self, asset: str) -> Balance:
        free, locked = self.free(asset), self.locked(asset)
        return Balance(Market.SPOT, asset, free, locked, free + locked)

    def balances(self, assets: Iterable[str] | None = None) -> tuple[Balance, ...]:
        return tuple(self.balance(asset) for asset in (assets if assets is not None else self.assets()))


@dataclass(slots=True)
class FuturesPosition:
    """One-way position of one symbol. `isolated_wallet` is the margin carved out of the wallet."""

    symbol: str
    margin_asset: str
    leverage: int
    margin_type: MarginType
    quantity: Decimal = ZERO
    entry_price: Decimal = ZERO
    isolated_wallet: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    ts_updated: int = 0


@dataclass(frozen=True, slots=True)
class _MarginTotals:
    """Per margin asset: Σ unrealised PnL (all positions), Σ cross position margin, Σ isolated wallets,
    Σ open-order margin, and the available balance they leave."""

    unrealized: Decimal
    position_margin: Decimal
    isolated: Decimal
    orders: Decimal
    available: Decimal


@dataclass(frozen=True, slots=True)
class FillEffect:
    """What a futures fill did: price PnL realised and the position after it."""

    realized_pnl: Decimal
    quantity_before: Decimal
    quantity_after: Decimal


class FuturesAccount:
    """USDⓈ-M account in one-way mode. Marks come from the engine (`mark_of(symbol)`)."""

    def __init__(
        self,
        balances: Mapping[str, Decimal] | None,
        brackets: BracketRegistry,
        mark_of: Callable[[str], Decimal],
        default_leverage: int = 20,
        default_margin_type: MarginType = MarginType.CROSSED,
    ) -> None:
        self._wallet: dict[str, Decimal] = {asset: amount for asset, amount in (balances or {}).items()}
        self.positions: dict[str, FuturesPosition] = {}
        self.order_margin: dict[str, Decimal] = {}
        self.insurance_cover: Decimal = ZERO  # losses beyond margin absorbed by the "insurance fund"
        self.brackets = brackets
        self._mark_of = mark_of
        self.default_leverage = default_leverage
        self.default_margin_type = default_margin_type

    # ---- state -----------------------------------------------------------------------------------
    def wallet(self, asset: str) -> Decimal:
        return self._wallet.get(asset, ZERO)

    def assets(self) -> list[str]:
        return sorted(self._wallet)

    def deposit(self, asset: str, amount: Decimal) -> None:
        if amount < 0:
            raise ValueError("a deposit must not be negative")
        self._wallet[asset] = self.wallet(asset) + amount

    def position(self, symbol: str, margin_asset: str) -> FuturesPosition:
        position = self.positions.get(symbol)
        if position is None:
            leverage = min(self.default_leverage, self.brackets.table(symbol).max_leverage)
            position = FuturesPosition(symbol, margin_asset, leverage, self.default_margin_type)
            self.positions[symbol] = position
        return position

    def unrealized_pnl(self, position: FuturesPosition) -> Decimal:
        if position.quantity == 0:
            return ZERO
        return (self._mark_of(position.symbol) - position.entry_price) * position.quantity

    def notional(self, position: FuturesPosition) -> Decimal:
        return abs(position.quantity) * self._mark_of(position.symbol)

    def maintenance_margin(self, position: FuturesPosition) -> Decimal:
        if position.quantity == 0:
            return ZERO
        return self.brackets.table(position.symbol).maintenance_margin(self.notional(position))

    def initial_margin(self, position: FuturesPosition) -> Decimal:
        return self.notional(position) / position.leverage

    def _cross(self, asset: str) -> list[FuturesPosition]:
        return [
            p
            for p in self.positions.values()
            if p.margin_asset == asset and p.margin_type is MarginType.CROSSED and p.quantity != 0
        ]

    def cross_wallet(self, asset: str) -> Decimal:
        isolated = sum((p.isolated_wallet for p in self.positions.values() if p.margin_asset == asset), start=ZERO)
        return self.wallet(asset) - isolated

    def available(self, asset: str) -> Decimal:
        """Cross wallet + cross unrealised PnL − cross position margin − open-order margin."""
        return self._totals(asset).available

    def _totals(self, asset: str) -> _MarginTotals:
        """The sums behind `available` and `balance`, in one pass over the positions (a fill and an
        order's margin check need them; each unrealised PnL and margin is computed once)."""
        unrealized = cross_unrealized = position_margin = isolated = ZERO
        for position in self.positions.values():
            if position.margin_asset != asset:
                continue
            pnl = self.unrealized_pnl(position)
            unrealized += pnl
            isolated += position.isolated_wallet
            if position.margin_type is MarginType.CROSSED and position.quantity != 0:
                cross_unrealized += pnl
                position_margin += self.initial_margin(position)
        orders = ZERO
        for symbol, margin in self.order_margin.items():
            if self.positions_asset(symbol) == asset:
                orders += margin
        available = self.wallet(asset) - isolated + cross_unrealized - position_margin - orders
        return _MarginTotals(unrealized, position_margin, isolated, orders, available)

    def max_withdraw(self, asset: str) -> Decimal:
        """What may leave the wallet: the available balance without unrealised profit (the exchange
        never lets an open profit be transferred out; an open loss does reduce it)."""
        cross = self._cross(asset)
        unrealized = sum((self.unrealized_pnl(p) for p in cross), start=ZERO)
        return max(ZERO, self.available(asset) - max(unrealized, ZERO))

    def withdraw(self, asset: str, amount: Decimal) -> None:
        if amount < 0:
            raise ValueError("a withdrawal must not be negative")
        if amount > self.max_withdraw(asset):
            raise InsufficientFunds("Asset transfer failed: insufficient balance", -5013)
        self._wallet[asset] = self.wallet(asset) - amount

    def positions_asset(self, symbol: str) -> str | None:
        position = self.positions.get(symbol)
        return position.margin_asset if position is not None else None

    # ---- changes ---------------------------------------------------------------------------------
    def reserve_order_margin(self, symbol: str, margin_asset: str, amount: Decimal) -> None:
        self.position(symbol, margin_asset)
        if amount > 0 and amount > self.available(margin_asset):
            raise InsufficientFunds("Margin is insufficient.", -2019)
        self.order_margin[symbol] = self.order_margin.get(symbol, ZERO) + amount

    def release_order_margin(self, symbol: str, amount: Decimal) -> None:
        self.order_margin[symbol] = max(ZERO, self.order_margin.get(symbol, ZERO) - amount)

    def apply_fill(
        self, symbol: str, margin_asset: str, side: Side, price: Decimal, quantity: Decimal, fee: Decimal, ts: int
    ) -> FillEffect:
        """Book a fill: realised PnL and fee into the wallet; isolated margin moves with the position."""
        position = self.position(symbol, margin_asset)
        before = position.quantity
        signed = quantity * side.sign
        closed = formulas.closing_quantity(before, signed)
        realized = formulas.realized_pnl(before, position.entry_price, price, closed) if closed else ZERO
        if position.margin_type is MarginType.ISOLATED and closed:
            released = position.isolated_wallet * closed / abs(before)
            position.isolated_wallet -= released
        position.entry_price = formulas.next_entry_price(before, position.entry_price, price, signed)
        position.quantity = before + signed
        opened = quantity - closed
        if position.margin_type is MarginType.ISOLATED and opened > 0:
            position.isolated_wallet += price * opened / position.leverage
        if position.quantity == 0:
            position.isolated_wallet = ZERO
        position.realized_pnl += realized
        position.ts_updated = ts
        self._wallet[margin_asset] = self.wallet(margin_asset) + realized - fee
        self._cover_deficit(margin_asset)
        return FillEffect(realized, before, position.quantity)

    def settle_funding(self, symbol: str, rate: Decimal, mark: Decimal, ts: int) -> Decimal:
        """Funding of one settlement: longs pay a positive rate, shorts receive it."""
        position = self.positions.get(symbol)
        if position is None or position.quantity == 0:
            return ZERO
        payment = formulas.funding_payment(position.quantity, mark, rate)
        self._wallet[position.margin_asset] = self.wallet(position.margin_asset) + payment
        if position.margin_type is MarginType.ISOLATED:
            position.isolated_wallet = max(ZERO, position.isolated_wallet + payment)
        position.ts_updated = ts
        self._cover_deficit(position.margin_asset)
        return payment

    def cover_loss(self, asset: str, amount: Decimal) -> None:
        """The insurance fund takes `amount` of a loss (isolated liquidation beyond its margin)."""
        self._wallet[asset] = self.wallet(asset) + amount
        self.insurance_cover += amount

    def _cover_deficit(self, asset: str) -> None:
        wallet = self.wallet(asset)
        if wallet < 0:
            self.insurance_cover += -wallet
            self._wallet[asset] = ZERO

    def set_leverage(self, symbol: str, margin_asset: str, leverage: int) -> Decimal:
        table = self.brackets.table(symbol)
        if not 1 <= leverage <= table.max_leverage:
            raise InvalidOrderError(f"Leverage {leverage} is not valid", -4028)
        position = self.position(symbol, margin_asset)
        max_notional = table.max_notional(leverage)
        if self.notional(position) > max_notional:
            raise InvalidOrderError("Exceeded the maximum allowable position at current leverage.", -2027)
        position.leverage = leverage
        return max_notional

    def set_margin_type(self, symbol: str, margin_asset: str, margin_type: MarginType, has_open_orders: bool) -> None:
        position = self.position(symbol, margin_asset)
        if position.margin_type is margin_type:
            raise InvalidOrderError("No need to change margin type.", -4046)
        if has_open_orders:
            raise InvalidOrderError("Margin type cannot be changed if there exists open orders.", -4047)
        if position.quantity != 0:
            raise InvalidOrderError("Margin type cannot be changed if there exists position.", -4048)
        position.margin_type = margin_type

    # ---- liquidation -----------------------------------------------------------------------------
    def positions_to_liquidate(self) -> list[str]:
        """Symbols whose margin balance fell to their maintenance margin (at mark price).

        Isolated: isolated wallet + unrealised PnL <= maintenance margin of that position.
        Cross: cross wallet + Σ cross unrealised PnL <= Σ cross maintenance margin ⇒ every cross position.
        """
        doomed: list[str] = []
        for position in self.positions.values():
            if position.quantity != 0 and position.margin_type is MarginType.ISOLATED:
                equity = position.isolated_wallet + self.unrealized_pnl(position)
                if equity <= self.maintenance_margin(position):
                    doomed.append(position.symbol)
        for asset in self.assets():
            cross = self._cross(asset)
            if not cross:
                continue
            equity = self.cross_wallet(asset) + sum((self.unrealized_pnl(p) for p in cross), start=ZERO)
            if equity <= sum((self.maintenance_margin(p) for p in cross), start=ZERO):
                doomed.extend(p.symbol for p in cross)
        return sorted(set(doomed))

    def liquidation_price(self, position: FuturesPosition) -> Decimal | None:
        if position.quantity == 0:
            return None
        bracket = self.brackets.table(position.symbol).bracket_for(self.notional(position))
        if position.margin_type is MarginType.ISOLATED:
            wallet, other_mm, other_upnl = position.isolated_wallet, ZERO, ZERO
        else:
            others = [p for p in self._cross(position.margin_asset) if p.symbol != position.symbol]
            wallet = self.cross_wallet(position.margin_asset)
            other_mm = sum((self.maintenance_margin(p) for p in others), start=ZERO)
            other_upnl = sum((self.unrealized_pnl(p) for p in others), start=ZERO)
        price = formulas.liquidation_price(
            wallet,
            other_mm,
            other_upnl,
            position.quantity,
            position.entry_price,
            bracket.maint_margin_ratio,
            bracket.cum,
        )
        return price if price > 0 else None

    # ---- snapshots -------------------------------------------------------------------------------
    def balance(self, asset: str) -> Balance:
        totals = self._totals(asset)
        in_use = totals.position_margin + totals.isolated + totals.orders
        return Balance(
            Market.FUTURES, asset, max(ZERO, totals.available), in_use, self.wallet(asset), totals.unrealized
        )

    def balances(self, assets: Iterable[str] | None = None) -> tuple[Balance, ...]:
        return tuple(self.balance(asset) for asset in (assets if assets is not None else self.assets()))

    def snapshot(self, position: FuturesPosition, with_liquidation_price: bool = True) -> PositionSnapshot:
        mark = self._mark_of(position.symbol)
        return PositionSnapshot(
            market=Market.FUTURES,
            symbol=position.symbol,
            quantity=position.quantity,
            entry_price=position.entry_price,
            mark_price=mark,
            unrealized_pnl=self.unrealized_pnl(position),
            realized_pnl=position.realized_pnl,
            leverage=position.leverage,
            margin_type=position.margin_type,
            isolated_wallet=position.isolated_wallet,
            initial_margin=self.initial_margin(position),
            maintenance_margin=self.maintenance_margin(position),
            liquidation_price=self.liquidation_price(position) if with_liquidation_price else None,
            ts_updated=position.ts_updated,
        )
