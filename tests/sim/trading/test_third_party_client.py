"""Acceptance: a widely used third-party Binance client (python-binance), pointed at the simulator by
its base URLs only, places, queries and cancels spot and USD-M orders, reads balances and positions,
and receives the user data streams (spot through the WebSocket API's userDataStream.subscribe, USD-M
through a listenKey on the /private route).

The only thing changed in the library is where it connects: its URL constants (REST `API_URL`,
`FUTURES_URL`, WS-API `WS_API_URL`, stream `FSTREAM_URL`). It signs, times and parses as it does
against the real exchange.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest
from binance.exceptions import BinanceAPIException

from binance import AsyncClient, BinanceSocketManager
from kestrel.core.enums import Market
from tests.sim.trading.conftest import KEY, QUIET, SECRET, SimFactory, best, quantity_for


def _client_class(sim: Any) -> type[AsyncClient]:
    class SimulatorClient(AsyncClient):  # type: ignore[misc]
        API_URL = f"{sim.rest_url}/api"
        FUTURES_URL = f"{sim.rest_url}/fapi"
        WS_API_URL = f"{sim.ws_url}/ws-api/v3"

    return SimulatorClient


async def _next_event(socket: Any, kind: str, timeout: float = 10.0) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        message = await asyncio.wait_for(socket.recv(), timeout=max(0.01, deadline - loop.time()))
        if isinstance(message, dict) and message.get("e") == kind:
            return message
    raise TimeoutError(f"no {kind}")


@pytest.mark.slow  # ~20 s: the library's sockets wait out their 10 s read timeout when they close
async def test_python_binance_trades_spot_and_futures_against_the_simulator(make_trading_sim: SimFactory) -> None:
    async with make_trading_sim(rates=QUIET) as sim:
        client = await _client_class(sim).create(KEY, SECRET)
        try:
            manager = BinanceSocketManager(client)
            manager.FSTREAM_URL = f"{sim.futures_ws_url}/"
            # ---- spot ---------------------------------------------------------------------------
            bid, _ = best(sim, Market.SPOT)
            quantity = quantity_for(Decimal(20), bid, Decimal("0.00001"))
            async with manager.user_socket() as spot_stream:
                order = await client.create_order(
                    symbol="BTCUSDT",
                    side="BUY",
                    type="LIMIT",
                    timeInForce="GTC",
                    quantity=str(quantity),
                    price=str(bid),
                )
                assert order["status"] == "NEW" and order["clientOrderId"].startswith("x-")
                report = await _next_event(spot_stream, "executionReport")
                assert (report["i"], report["x"]) == (order["orderId"], "NEW")
                fetched = await client.get_order(symbol="BTCUSDT", orderId=order["orderId"])
                assert fetched["status"] == "NEW"
                cancelled = await client.cancel_order(symbol="BTCUSDT", orderId=order["orderId"])
                assert cancelled["status"] == "CANCELED"
                report = await _next_event(spot_stream, "executionReport")
                assert report["x"] == "CANCELED"
            balance = await client.get_asset_balance(asset="USDT")
            assert Decimal(balance["free"]) == 100_000
            with pytest.raises(BinanceAPIException) as refused:
                await client.get_order(symbol="BTCUSDT", orderId=123456)
            assert refused.value.code == -2013
            # ---- USD-M ------------------------------------------------------------------------
            _, ask = best(sim, Market.FUTURES)
            quantity = quantity_for(Decimal(150), ask, Decimal("0.001"))
            async with manager.futures_user_socket() as futures_stream:
                await client.futures_change_leverage(symbol="BTCUSDT", leverage=5)
                filled = await client.futures_create_order(
                    symbol="BTCUSDT", side="BUY", type="MARKET", quantity=str(quantity), newOrderRespType="RESULT"
                )
                assert filled["status"] == "FILLED"
                update = await _next_event(futures_stream, "ORDER_TRADE_UPDATE")
                assert update["o"]["i"] == filled["orderId"]
                account = await _next_event(futures_stream, "ACCOUNT_UPDATE")
                assert Decimal(account["a"]["P"][0]["pa"]) == quantity
                resting = await client.futures_create_order(
                    symbol="BTCUSDT",
                    side="SELL",
                    type="LIMIT",
                    timeInForce="GTC",
                    quantity=str(quantity),
                    price=str(ask + 100 * Decimal("0.1")),
                )
                assert (await client.futures_get_order(symbol="BTCUSDT", orderId=resting["orderId"]))["status"] == "NEW"
                cancelled = await client.futures_cancel_order(symbol="BTCUSDT", orderId=resting["orderId"])
                assert cancelled["status"] == "CANCELED"
                stop = await client.futures_create_order(  # routed to /fapi/v1/algoOrder by the library
                    symbol="BTCUSDT",
                    side="SELL",
                    type="STOP_MARKET",
                    quantity=str(quantity),
                    triggerPrice=str(ask - 100 * Decimal("0.1")),
                    reduceOnly="true",
                )
                assert stop["algoStatus"] == "NEW"
                assert (await _next_event(futures_stream, "ALGO_UPDATE"))["o"]["aid"] == stop["algoId"]
            positions = await client.futures_position_information(symbol="BTCUSDT")
            assert Decimal(positions[0]["positionAmt"]) == quantity
            balances = await client.futures_account_balance()
            assert balances[0]["asset"] == "USDT" and Decimal(balances[0]["balance"]) < 100_000
        finally:
            await client.close_connection()
