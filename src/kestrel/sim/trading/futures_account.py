"""USD-M account REST routes: balance, account, positionRisk (v2 and v3), leverage, margin type,
leverage brackets, position mode and the listenKey (spec §5.9, §5.10).

One-way position mode only: `positionSide/dual` reports false and refuses hedge mode (-4059 when
asked for what is already set, otherwise an explicit refusal: the engine keeps one net position).
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from decimal import Decimal
from typing import Any

from kestrel.core.enums import MarginType, Market
from kestrel.core.venue import PositionSnapshot
from kestrel.sim.rest import BinanceError
from kestrel.sim.trading import params as p
from kestrel.sim.trading import wire_futures
from kestrel.sim.trading.http import Call, Handler

FUTURES = Market.FUTURES


def _alias(account: str) -> str:
    return hashlib.sha256(account.encode()).hexdigest()[:8]


def _version(call: Call) -> int:
    return 2 if call.endpoint.path.startswith("/fapi/v2/") else 3


async def balance(call: Call) -> list[dict[str, Any]]:
    states = call.desk.asset_states(call.account_id)
    return wire_futures.balance_rows(states, _alias(call.account_id), call.server_ms)


def _position(call: Call, symbol: str) -> PositionSnapshot:
    """The account's position on `symbol` (flat if none), marked with the market's mark price."""
    desk = call.desk
    desk.engine.leverage(call.account_id, symbol)  # makes the position record (leverage, margin type)
    snapshot = desk.engine.positions(call.account_id, symbol)[0]
    if not desk.bridge.is_active(FUTURES, symbol):
        rows = desk.state.source.premium_index(symbol)
        if rows:
            snapshot = replace(snapshot, mark_price=Decimal(str(rows[0]["markPrice"])))
    return snapshot


def _with_position_or_orders(call: Call) -> list[str]:
    desk = call.desk
    symbols = {p.symbol for p in desk.engine.positions(call.account_id) if p.quantity != 0}
    symbols.update(o.symbol for o in desk.engine.open_orders(call.account_id, FUTURES) if not desk.is_hidden(o))
    return sorted(symbols)


async def account(call: Call) -> dict[str, Any]:
    desk = call.desk
    version = _version(call)
    symbols = _with_position_or_orders(call)
    positions = [
        wire_futures.account_position(_position(call, symbol), desk.open_notional(call.account_id, symbol), version)
        for symbol in symbols
    ]
    tier = desk.engine.account(call.account_id).fees.futures_tier
    return wire_futures.account_body(desk.asset_states(call.account_id), positions, call.server_ms, tier, version)


async def position_risk(call: Call) -> list[dict[str, Any]]:
    desk = call.desk
    version = _version(call)
    symbol = call.symbol(required=False)
    if symbol is not None:
        symbols = [symbol]
    elif version == 2:
        symbols = [spec.symbol for spec in desk.state.source.specs(FUTURES)]
    else:
        symbols = _with_position_or_orders(call)
    futures = desk.engine.account(call.account_id).futures
    rows = []
    for name in symbols:
        position = _position(call, name)
        order_margin = futures.order_margin.get(name, Decimal(0))
        max_notional = futures.brackets.table(name).max_notional(position.leverage)
        rows.append(
            wire_futures.position_risk(
                position,
                desk.numbers(FUTURES, name),
                desk.open_notional(call.account_id, name),
                order_margin,
                max_notional,
                desk.to_ms,
                version,
            )
        )
    return rows


async def set_leverage(call: Call) -> dict[str, Any]:
    desk = call.desk
    symbol = call.required_symbol()
    leverage = p.integer(call.params, "leverage", required=True)
    assert leverage is not None
    desk.activate(FUTURES, symbol, call.ts)
    max_notional = desk.engine.set_leverage(call.account_id, symbol, leverage, call.ts)
    desk.streams.publish(call.account_id, FUTURES, wire_futures.leverage_update(symbol, leverage, call.server_ms))
    return {"leverage": leverage, "maxNotionalValue": str(max_notional), "symbol": symbol}


async def set_margin_type(call: Call) -> dict[str, Any]:
    desk = call.desk
    symbol = call.required_symbol()
    raw = p.text(call.params, "marginType", required=True) or ""
    try:
        margin_type = MarginType(raw)
    except ValueError:
        raise BinanceError(
            -1100, "Illegal characters found in parameter 'marginType'; legal range is 'ISOLATED|CROSSED'."
        ) from None
    desk.activate(FUTURES, symbol, call.ts)
    events = desk.engine.set_margin_type(call.account_id, symbol, margin_type, call.ts)
    desk.dispatch(events)
    return {"code": 200, "msg": "success"}


def _brackets(call: Call, symbol: str) -> dict[str, Any]:
    table = call.desk.engine.settings.brackets.table(symbol)
    return {
        "symbol": symbol,
        "brackets": [
            {
                "bracket": b.bracket,
                "initialLeverage": b.initial_leverage,
                "notionalCap": int(b.notional_cap)
                if b.notional_cap == b.notional_cap.to_integral()
                else float(b.notional_cap),
                "notionalFloor": int(b.notional_floor)
                if b.notional_floor == b.notional_floor.to_integral()
                else float(b.notional_floor),
                "maintMarginRatio": float(b.maint_margin_ratio),
                "cum": float(b.cum),
            }
            for b in table.brackets
        ],
    }


async def leverage_brackets(call: Call) -> Any:
    symbol = call.symbol(required=False)
    if symbol is not None:
        return _brackets(call, symbol)
    return [_brackets(call, spec.symbol) for spec in call.desk.state.source.specs(FUTURES)]


async def position_mode(call: Call) -> dict[str, Any]:
    return {"dualSidePosition": False}


async def set_position_mode(call: Call) -> dict[str, Any]:
    dual = p.boolean(call.params, "dualSidePosition")
    if not dual:
        raise BinanceError(-4059, "No need to change position side.")
    raise BinanceError(-4059, "Hedge mode is not simulated: this simulator keeps one-way positions.")


async def listen_key_create(call: Call) -> dict[str, Any]:
    return {"listenKey": call.desk.streams.create(call.account_id, FUTURES)}


def _current_key(call: Call) -> str:
    """PUT/DELETE take an optional `listenKey`; without it they act on the account's active key."""
    key = p.text(call.params, "listenKey")
    if key is not None:
        return key
    found = call.desk.streams.key_of(call.account_id, FUTURES)
    if found is None:
        raise BinanceError(-1125, "This listenKey does not exist.")
    return found


async def listen_key_keepalive(call: Call) -> dict[str, Any]:
    key = _current_key(call)
    call.desk.streams.keepalive(key, call.account_id, FUTURES)
    return {"listenKey": key}


async def listen_key_close(call: Call) -> dict[str, Any]:
    key = _current_key(call)
    call.desk.streams.close(key, call.account_id, FUTURES)
    return {}


ACCOUNT_HANDLERS: dict[tuple[str, str], Handler] = {
    ("GET", "/fapi/v2/balance"): balance,
    ("GET", "/fapi/v3/balance"): balance,
    ("GET", "/fapi/v2/account"): account,
    ("GET", "/fapi/v3/account"): account,
    ("GET", "/fapi/v2/positionRisk"): position_risk,
    ("GET", "/fapi/v3/positionRisk"): position_risk,
    ("POST", "/fapi/v1/leverage"): set_leverage,
    ("POST", "/fapi/v1/marginType"): set_margin_type,
    ("GET", "/fapi/v1/leverageBracket"): leverage_brackets,
    ("GET", "/fapi/v1/positionSide/dual"): position_mode,
    ("POST", "/fapi/v1/positionSide/dual"): set_position_mode,
    ("POST", "/fapi/v1/listenKey"): listen_key_create,
    ("PUT", "/fapi/v1/listenKey"): listen_key_keepalive,
    ("DELETE", "/fapi/v1/listenKey"): listen_key_close,
}
