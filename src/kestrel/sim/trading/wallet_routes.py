"""Wallet transfer routes (`/sapi/v1/asset/transfer`): spot ↔ USD-M futures of one account (R-EX-6).

`POST` moves the money in the engine (all or nothing; -5013 when the source wallet cannot give it) and
publishes what the exchange publishes: a spot `balanceUpdate` then `outboundAccountPosition`, and a
futures `ACCOUNT_UPDATE` (`m` DEPOSIT / WITHDRAW). `GET` is the transfer history of a type, newest
first, in the exchange's `{"total", "rows"}` shape: a client whose POST ended without an answer finds out
there whether it happened. Injected faults (`TradingDesk.fail_next_transfers`) answer 5xx before or
after the transfer is made, as the order faults do.
"""

from __future__ import annotations

import itertools
from typing import Any

from aiohttp import web

from kestrel.binance.http.endpoints import SPOT as SPOT_ENDPOINTS
from kestrel.core.enums import Market
from kestrel.core.errors import InvalidOrderError
from kestrel.core.transfers import TransferDirection
from kestrel.sim.rest import BinanceError, add_route
from kestrel.sim.trading import params as p
from kestrel.sim.trading.desk import TradingDesk, TransferRecord
from kestrel.sim.trading.endpoints import WeightTable
from kestrel.sim.trading.http import Call, Handler, trading_route
from kestrel.sim.trading.names import money

_transfer_ids = itertools.count(100_000_001)
_HISTORY_LIMIT = 100


def _direction(call: Call) -> TransferDirection:
    raw = p.text(call.params, "type", required=True) or ""
    try:
        return TransferDirection(raw)
    except ValueError:
        raise BinanceError(-1102, f"Illegal type: {raw}") from None  # only spot <-> USD-M exists here


async def new_transfer(call: Call) -> dict[str, Any]:
    desk = call.desk
    direction = _direction(call)
    asset = (p.text(call.params, "asset", required=True) or "").upper()
    amount = p.decimal(call.params, "amount")
    if amount is None:
        raise BinanceError(-1102, "Mandatory parameter 'amount' was not sent, was empty/null, or malformed.")
    fault = desk.transfer_fault()
    if fault == "5xx_unplaced":
        raise BinanceError(-1008, "Service Unavailable.", status=503)
    try:
        events = desk.engine.transfer(call.account_id, direction, asset, amount, call.ts)
    except InvalidOrderError as error:
        raise BinanceError(error.code or -5013, str(error)) from None
    record = TransferRecord(call.account_id, next(_transfer_ids), direction, asset, amount, call.server_ms)
    desk.transfers.append(record)
    desk.counters.transfers += 1
    spot_delta = amount if direction.target is Market.SPOT else -amount
    desk.streams.publish(
        call.account_id,
        Market.SPOT,
        {"e": "balanceUpdate", "E": call.server_ms, "a": asset, "d": money(spot_delta), "T": call.server_ms},
    )
    desk.dispatch(events)
    if fault == "5xx_placed":  # it happened; the client is not told
        raise BinanceError(-1000, "An unknown error occured while processing the request.", status=500)
    return {"tranId": record.transfer_id}


async def transfer_history(call: Call) -> dict[str, Any]:
    direction = _direction(call)
    start_ms = p.integer(call.params, "startTime")
    end_ms = p.integer(call.params, "endTime")
    size = min(p.integer(call.params, "size") or 10, _HISTORY_LIMIT)
    rows = [
        record
        for record in reversed(call.desk.transfers)
        if record.account == call.account_id
        and record.direction is direction
        and (start_ms is None or record.ts_ms >= start_ms)
        and (end_ms is None or record.ts_ms <= end_ms)
    ]
    return {
        "total": len(rows),
        "rows": [
            {
                "asset": r.asset,
                "amount": money(r.amount),
                "type": r.direction.value,
                "status": "CONFIRMED",
                "tranId": r.transfer_id,
                "timestamp": r.ts_ms,
            }
            for r in rows[:size]
        ],
    }


def register_wallet_routes(app: web.Application, desk: TradingDesk, weights: WeightTable) -> None:
    handlers: dict[str, Handler] = {"asset_transfer": new_transfer, "asset_transfer_history": transfer_history}
    for name, handler in handlers.items():
        endpoint = SPOT_ENDPOINTS[name]
        add_route(app, endpoint.method, endpoint.path, trading_route(desk, endpoint, handler), weights.weight)
