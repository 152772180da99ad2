"""User data stream events, wire → core (spec §6): order updates, fills, balances, positions.

Every event carries its type in `e`; the events we read form one msgspec tagged union, so a frame is
decoded once, straight into its typed Struct. The spot WebSocket API wraps events as
``{"subscriptionId":0,"event":{...}}``; listenKey streams deliver them bare. Anything else (an event
type we do not read, a request's answer) goes through `decode_user_frame`'s slow path and comes back
as `OtherFrame`.

Translation (`to_core`):
- `executionReport` (spot), `ORDER_TRADE_UPDATE` (futures) → `OrderUpdate`, with a `Fill` on trades
  (`x` TRADE, or CALCULATED for a liquidation). On a cancel the spot event names the order in `C`
  (its `c` is the cancel's own id).
- `ALGO_UPDATE` (futures conditional orders) → `AlgoUpdate` (the venue joins it to the resulting
  order's ORDER_TRADE_UPDATEs by `ai`).
- `outboundAccountPosition`, `balanceUpdate` (spot), `ACCOUNT_UPDATE` (futures) → `AccountUpdate`
  (futures positions carry only what the event has; the venue completes them from its view).
- `listenKeyExpired`, `eventStreamTerminated` → `StreamEnded`: the stream must be re-established.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgspec

from kestrel.binance.schemas.trading import core_order_type
from kestrel.binance.schemas.trading_rest import (
    ALGO_STATUS,
    ALGO_TRIGGERED,
    ZERO,
    ns,
    order_status,
    positive,
    time_in_force,
    without_blanks,
)
from kestrel.core.enums import LiquiditySide, MarginType, Market, OrderStatus, Side
from kestrel.core.errors import DataError
from kestrel.core.identifiers import ClientOrderId, TradeId, VenueOrderId
from kestrel.core.orders import Fill
from kestrel.core.venue import (
    AccountUpdate,
    AccountUpdateReason,
    Balance,
    ExecutionType,
    OrderSnapshot,
    OrderUpdate,
    PositionSnapshot,
    WorkingType,
)
from kestrel.matching.orders import EXPIRED_IOC, EXPIRED_LIQUIDATION, EXPIRED_MARKET, EXPIRED_OCO, EXPIRED_REDUCE_ONLY

_EXECUTION = {kind.value: kind for kind in ExecutionType}
_EXECUTION["REPLACED"] = ExecutionType.AMENDMENT  # spot amend
_EXECUTION["TRADE_PREVENTION"] = ExecutionType.EXPIRED  # spot self-trade prevention
_WORKING_TYPE = {kind.value: kind for kind in WorkingType}

# expiry reasons in the matching engine's words (kestrel.matching.orders), so a strategy reads the
# same reason from SimVenue and BinanceVenue
_SPOT_EXPIRY = {
    "UNFILLED_IOC_QUANTITY_EXPIRED": EXPIRED_IOC,
    "INSUFFICIENT_LIQUIDITY": EXPIRED_MARKET,
    "OCO_TRIGGER": EXPIRED_OCO,
}
_FUTURES_EXPIRY = {"2": EXPIRED_IOC, "4": EXPIRED_REDUCE_ONLY, "5": EXPIRED_LIQUIDATION, "9": EXPIRED_MARKET}
_ACCOUNT_REASON = {
    "ORDER": AccountUpdateReason.ORDER,
    "WITHDRAW": AccountUpdateReason.WITHDRAW,
    "FUNDING_FEE": AccountUpdateReason.FUNDING_FEE,
    "MARGIN_TYPE_CHANGE": AccountUpdateReason.MARGIN_TYPE_CHANGE,
    "INSURANCE_CLEAR": AccountUpdateReason.LIQUIDATION,
}


# ---- wire structs --------------------------------------------------------------------------------
class WireExecutionReport(msgspec.Struct, tag_field="e", tag="executionReport", gc=False):
    E: int
    s: str
    c: str
    S: str
    o: str
    x: str
    X: str
    i: int
    q: Decimal = ZERO
    p: Decimal = ZERO
    P: Decimal = ZERO
    F: Decimal = ZERO
    f: str | None = None
    g: int = -1
    C: str = ""
    r: str = "NONE"
    l: Decimal = ZERO  # noqa: E741 - the wire name
    z: Decimal = ZERO
    L: Decimal = ZERO
    n: Decimal = ZERO
    N: str | None = None
    T: int = 0
    t: int = -1
    w: bool = False
    m: bool = False
    O: int = 0  # noqa: E741
    Z: Decimal = ZERO
    d: int | None = None
    expiry_reason: str | None = msgspec.field(default=None, name="eR")


class WireListStatus(msgspec.Struct, tag_field="e", tag="listStatus", gc=False):
    E: int
    s: str
    g: int
    l: str  # noqa: E741
    L: str
    C: str = ""


class WireSpotBalanceEntry(msgspec.Struct, gc=False):
    a: str
    f: Decimal
    l: Decimal  # noqa: E741


class WireOutboundAccountPosition(msgspec.Struct, tag_field="e", tag="outboundAccountPosition", gc=False):
    E: int
    B: list[WireSpotBalanceEntry]
    u: int = 0


class WireBalanceUpdate(msgspec.Struct, tag_field="e", tag="balanceUpdate", gc=False):
    E: int
    a: str
    d: Decimal
    T: int = 0


class WireFuturesOrderEntry(msgspec.Struct, gc=False):
    s: str
    c: str
    S: str
    o: str
    x: str
    X: str
    i: int
    q: Decimal = ZERO
    p: Decimal = ZERO
    ap: Decimal = ZERO
    sp: Decimal = ZERO
    f: str | None = None
    l: Decimal = ZERO  # noqa: E741
    z: Decimal = ZERO
    L: Decimal = ZERO
    N: str | None = None
    n: Decimal = ZERO
    T: int = 0
    t: int = 0
    m: bool = False
    R: bool = False
    wt: str = "CONTRACT_PRICE"
    ot: str | None = None
    cp: bool = False
    AP: Decimal | None = None
    cr: Decimal | None = None
    rp: Decimal = ZERO
    gtd: int = 0
    er: str = "0"


class WireOrderTradeUpdate(msgspec.Struct, tag_field="e", tag="ORDER_TRADE_UPDATE", gc=False):
    E: int
    o: WireFuturesOrderEntry
    T: int = 0


class WireFuturesBalanceEntry(msgspec.Struct, gc=False):
    a: str
    wb: Decimal
    cw: Decimal = ZERO
    bc: Decimal = ZERO


class WireFuturesPositionEntry(msgspec.Struct, gc=False):
    s: str
    pa: Decimal
    ep: Decimal = ZERO
    cr: Decimal = ZERO
    up: Decimal = ZERO
    mt: str = "cross"
    iw: Decimal = ZERO
    ps: str = "BOTH"


class WireAccountData(msgspec.Struct, gc=False):
    m: str
    B: list[WireFuturesBalanceEntry] = []
    P: list[WireFuturesPositionEntry] = []


class WireAccountUpdate(msgspec.Struct, tag_field="e", tag="ACCOUNT_UPDATE", gc=False):
    E: int
    a: WireAccountData
    T: int = 0


class WireAlgoEntry(msgspec.Struct, gc=False):
    caid: str
    aid: int
    s: str
    S: str
    o: str
    X: str
    q: Decimal = ZERO
    f: str | None = None
    ai: str | int | None = None
    ap: Decimal = ZERO
    aq: Decimal = ZERO
    tp: Decimal = ZERO
    p: Decimal = ZERO
    wt: str = "CONTRACT_PRICE"
    cp: bool = False
    R: bool = False
    tt: int = 0
    gtd: int = 0
    rm: str = ""


class WireAlgoUpdate(msgspec.Struct, tag_field="e", tag="ALGO_UPDATE", gc=False):
    E: int
    o: WireAlgoEntry
    T: int = 0


class WireListenKeyExpired(msgspec.Struct, tag_field="e", tag="listenKeyExpired", gc=False):
    E: int = 0
    listenKey: str = ""  # noqa: N815 - the wire name


class WireEventStreamTerminated(msgspec.Struct, tag_field="e", tag="eventStreamTerminated", gc=False):
    E: int = 0


WireUserEvent = (
    WireExecutionReport
    | WireListStatus
    | WireOutboundAccountPosition
    | WireBalanceUpdate
    | WireOrderTradeUpdate
    | WireAccountUpdate
    | WireAlgoUpdate
    | WireListenKeyExpired
    | WireEventStreamTerminated
)


class WireApiEvent(msgspec.Struct, gc=False):
    """A spot WebSocket API event frame."""

    subscriptionId: int  # noqa: N815 - the wire name
    event: WireUserEvent


_KNOWN_TYPES = frozenset(kind.__struct_config__.tag for kind in WireUserEvent.__args__)
_EVENT_DECODER = msgspec.json.Decoder(WireUserEvent)
_API_EVENT_DECODER = msgspec.json.Decoder(WireApiEvent)
_ANY_DECODER = msgspec.json.Decoder(dict[str, Any])


@dataclass(frozen=True, slots=True)
class OtherFrame:
    """A frame that is not a user event we read: a WS API answer, or an event type we ignore."""

    body: dict[str, Any]

    @property
    def event_type(self) -> str | None:
        event = self.body.get("event")
        source = event if isinstance(event, dict) else self.body
        value = source.get("e")
        return str(value) if value is not None else None


def decode_user_frame(data: bytes) -> WireUserEvent | OtherFrame:
    """One user-stream frame (bare event or WS-API wrapped). Raises `DataError` on malformed JSON."""
    try:
        if data.startswith(b'{"subscriptionId"'):
            wrapped: WireApiEvent = _API_EVENT_DECODER.decode(data)
            return wrapped.event
        event: WireUserEvent = _EVENT_DECODER.decode(data)
        return event
    except msgspec.DecodeError:
        pass
    try:
        body = _ANY_DECODER.decode(data)
    except msgspec.DecodeError as exc:
        raise DataError(f"unreadable user data frame: {exc}: {data[:200]!r}") from None
    inner = body.get("event")
    wrapped_event = isinstance(inner, dict) and "subscriptionId" in body
    candidate = inner if wrapped_event else body
    if isinstance(candidate, dict) and candidate.get("e") in _KNOWN_TYPES:
        try:  # keys in another order, or blank numbers ("") the typed decoder refused
            converted: WireUserEvent = msgspec.convert(without_blanks(candidate), WireUserEvent, strict=False)
            return converted
        except msgspec.ValidationError as exc:
            raise DataError(f"user data event {candidate.get('e')}: {exc}: {data[:200]!r}") from None
    return OtherFrame(body)


# ---- core translation ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AlgoUpdate:
    """A futures conditional order's update, and the matching-engine order it created (if any)."""

    update: OrderUpdate
    resulting_order_id: int | None
    algo_status: str


@dataclass(frozen=True, slots=True)
class StreamEnded:
    """The exchange ended the stream (listenKey expired / subscription terminated)."""

    reason: str
    ts_event: int


@dataclass(frozen=True, slots=True)
class ListStatus:
    """A spot order list's status (the legs' own executionReports carry the order changes)."""

    symbol: str
    order_list_id: int
    list_client_order_id: str
    list_status: str
    list_order_status: str
    ts_event: int


UserEvent = OrderUpdate | AccountUpdate | AlgoUpdate | StreamEnded | ListStatus


def _execution(wire: str) -> ExecutionType:
    try:
        return _EXECUTION[wire]
    except KeyError:
        raise DataError(f"unknown execution type {wire!r}") from None


def spot_order_update(wire: WireExecutionReport, account_id: str, ts_init: int) -> OrderUpdate:
    client_id = ClientOrderId(wire.C or wire.c)
    order_type = core_order_type(Market.SPOT, wire.o)
    execution = _execution(wire.x)
    status = order_status(wire.X)
    expiry = _SPOT_EXPIRY.get(wire.expiry_reason or "", wire.expiry_reason) if status is OrderStatus.EXPIRED else None
    ts_event = ns(wire.T or wire.E)
    snapshot = OrderSnapshot(
        order_id=wire.i,
        client_order_id=client_id,
        market=Market.SPOT,
        symbol=wire.s,
        side=Side(wire.S),
        order_type=order_type,
        status=status,
        quantity=wire.q,
        filled_quantity=wire.z,
        cumulative_quote=wire.Z,
        ts_created=ns(wire.O) if wire.O else ts_event,
        ts_updated=ts_event,
        price=positive(wire.p),
        stop_price=positive(wire.P),
        time_in_force=time_in_force(wire.f),
        iceberg_quantity=positive(wire.F),
        trailing_delta_bips=wire.d,
        order_list_id=wire.g,
        triggered=order_type.is_conditional and (wire.w or wire.z > 0),
        expiry_reason=expiry,
    )
    fill = None
    if execution is ExecutionType.TRADE:
        fill = Fill(
            client_order_id=client_id,
            venue_order_id=VenueOrderId(wire.i),
            trade_id=TradeId(wire.t),
            market=Market.SPOT,
            symbol=wire.s,
            side=snapshot.side,
            price=wire.L,
            quantity=wire.l,
            fee=wire.n,
            fee_asset=wire.N or "",
            liquidity=LiquiditySide.MAKER if wire.m else LiquiditySide.TAKER,
            ts_event=ts_event,
            ts_init=ts_init,
        )
    reason = None if wire.r == "NONE" else wire.r
    if expiry is not None:
        reason = expiry
    return OrderUpdate(account_id, snapshot, execution, ts_event, ts_init, fill, None, reason)


def futures_order_update(wire: WireOrderTradeUpdate, account_id: str, ts_init: int) -> OrderUpdate:
    entry = wire.o
    order_type = core_order_type(Market.FUTURES, entry.ot or entry.o)
    execution = _execution(entry.x)
    status = order_status(entry.X)
    expiry = _FUTURES_EXPIRY.get(entry.er, f"er={entry.er}") if status is OrderStatus.EXPIRED else None
    ts_event = ns(entry.T or wire.T or wire.E)
    snapshot = OrderSnapshot(
        order_id=entry.i,
        client_order_id=ClientOrderId(entry.c),
        market=Market.FUTURES,
        symbol=entry.s,
        side=Side(entry.S),
        order_type=order_type,
        status=status,
        quantity=entry.q,
        filled_quantity=entry.z,
        cumulative_quote=entry.ap * entry.z,
        ts_created=ts_event,
        ts_updated=ts_event,
        price=positive(entry.p),
        stop_price=positive(entry.sp),
        time_in_force=time_in_force(entry.f),
        reduce_only=entry.R,
        close_position=entry.cp,
        working_type=_WORKING_TYPE.get(entry.wt, WorkingType.CONTRACT_PRICE),
        activation_price=positive(entry.AP),
        trailing_callback_rate=positive(entry.cr),
        good_till_ns=ns(entry.gtd) if entry.gtd else None,
        expiry_reason=expiry,
    )
    fill = None
    if execution in (ExecutionType.TRADE, ExecutionType.CALCULATED) and entry.l > 0:
        fill = Fill(
            client_order_id=snapshot.client_order_id,
            venue_order_id=VenueOrderId(entry.i),
            trade_id=TradeId(entry.t),
            market=Market.FUTURES,
            symbol=entry.s,
            side=snapshot.side,
            price=entry.L,
            quantity=entry.l,
            fee=entry.n,
            fee_asset=entry.N or "",
            liquidity=LiquiditySide.MAKER if entry.m else LiquiditySide.TAKER,
            ts_event=ts_event,
            ts_init=ts_init,
            realized_pnl=entry.rp,
        )
    return OrderUpdate(account_id, snapshot, execution, ts_event, ts_init, fill, None, expiry)


def algo_update(wire: WireAlgoUpdate, account_id: str, ts_init: int) -> AlgoUpdate:
    entry = wire.o
    try:
        status = ALGO_STATUS[entry.X]
    except KeyError:
        raise DataError(f"unknown algo status {entry.X!r}") from None
    triggered = entry.X in ALGO_TRIGGERED
    execution = {
        OrderStatus.CANCELED: ExecutionType.CANCELED,
        OrderStatus.REJECTED: ExecutionType.REJECTED,
        OrderStatus.EXPIRED: ExecutionType.EXPIRED,
    }.get(status, ExecutionType.TRIGGERED if triggered else ExecutionType.NEW)
    ts_event = ns(wire.T or wire.E)
    snapshot = OrderSnapshot(
        order_id=entry.aid,
        client_order_id=ClientOrderId(entry.caid),
        market=Market.FUTURES,
        symbol=entry.s,
        side=Side(entry.S),
        order_type=core_order_type(Market.FUTURES, entry.o),
        status=status,
        quantity=entry.q,
        filled_quantity=ZERO,  # the resulting order's ORDER_TRADE_UPDATEs carry the fills
        cumulative_quote=ZERO,
        ts_created=ts_event,
        ts_updated=ts_event,
        price=positive(entry.p),
        stop_price=positive(entry.tp),
        time_in_force=time_in_force(entry.f),
        reduce_only=entry.R,
        close_position=entry.cp,
        working_type=_WORKING_TYPE.get(entry.wt, WorkingType.CONTRACT_PRICE),
        triggered=triggered,
        good_till_ns=ns(entry.gtd) if entry.gtd else None,
    )
    resulting = int(entry.ai) if entry.ai is not None and entry.ai != "" else None
    reason = entry.rm or None
    update = OrderUpdate(account_id, snapshot, execution, ts_event, ts_init, None, None, reason)
    return AlgoUpdate(update, resulting, entry.X)


def spot_account_update(wire: WireOutboundAccountPosition, account_id: str, ts_init: int) -> AccountUpdate:
    balances = tuple(Balance(Market.SPOT, b.a, b.f, b.l, b.f + b.l) for b in wire.B)
    ts_event = ns(wire.u or wire.E)
    return AccountUpdate(account_id, Market.SPOT, AccountUpdateReason.ORDER, balances, (), ts_event, ts_init)


def futures_account_update(
    wire: WireAccountUpdate,
    account_id: str,
    ts_init: int,
    known_balances: dict[str, Balance],
    known_positions: dict[str, PositionSnapshot],
) -> AccountUpdate:
    """ACCOUNT_UPDATE completed from the view: the event has wallet balances and position amounts,
    entry, unrealized and accumulated realized PnL, margin type and isolated wallet; free/locked,
    leverage, margins and liquidation price keep their last known values (the venue refreshes them
    from REST when it matters). The mark price follows from entry + unrealized / amount."""
    ts_event = ns(wire.T or wire.E)
    balances: list[Balance] = []
    for entry in wire.a.B:
        known = known_balances.get(entry.a)
        unrealized = known.unrealized_pnl if known is not None else ZERO
        free = known.free + (entry.wb - known.wallet) if known is not None else entry.wb
        locked = known.locked if known is not None else ZERO
        balances.append(Balance(Market.FUTURES, entry.a, free, locked, entry.wb, unrealized))
    positions: list[PositionSnapshot] = []
    for item in wire.a.P:
        if item.ps not in ("BOTH", ""):
            continue  # hedge-mode legs: Kestrel trades one-way mode only
        known_position = known_positions.get(item.s)
        mark = item.ep + item.up / item.pa if item.pa else (known_position.mark_price if known_position else ZERO)
        margin_type = MarginType.ISOLATED if item.mt.lower() == "isolated" else MarginType.CROSSED
        positions.append(
            PositionSnapshot(
                market=Market.FUTURES,
                symbol=item.s,
                quantity=item.pa,
                entry_price=item.ep,
                mark_price=mark,
                unrealized_pnl=item.up,
                realized_pnl=item.cr,
                leverage=known_position.leverage if known_position else 0,
                margin_type=margin_type,
                isolated_wallet=item.iw,
                initial_margin=known_position.initial_margin if known_position and item.pa else ZERO,
                maintenance_margin=known_position.maintenance_margin if known_position and item.pa else ZERO,
                liquidation_price=known_position.liquidation_price if known_position and item.pa else None,
                ts_updated=ts_event,
            )
        )
    reason = _ACCOUNT_REASON.get(wire.a.m, AccountUpdateReason.DEPOSIT)
    return AccountUpdate(account_id, Market.FUTURES, reason, tuple(balances), tuple(positions), ts_event, ts_init)


def list_status(wire: WireListStatus) -> ListStatus:
    return ListStatus(wire.s, wire.g, wire.C, wire.l, wire.L, ns(wire.E))


def stream_ended(wire: WireListenKeyExpired | WireEventStreamTerminated) -> StreamEnded:
    reason = "listenKey expired" if isinstance(wire, WireListenKeyExpired) else "event stream terminated"
    return StreamEnded(reason, ns(wire.E))


def balance_delta(wire: WireBalanceUpdate) -> tuple[str, Decimal, int]:
    """(asset, delta, ts_event) of a spot deposit / withdrawal / transfer."""
    return wire.a, wire.d, ns(wire.T or wire.E)
