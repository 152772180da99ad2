"""Kestrel's own REST client (`kestrel.binance.http`) against the simulator: the endpoint table both
sides read, the budgets it tracks from the headers, and how it classifies refusals and unknown outcomes."""

from __future__ import annotations

from decimal import Decimal

import pytest

from kestrel.binance.http.client import BinanceHttpClient, UnknownOutcome
from kestrel.binance.http.endpoints import FUTURES, SPOT
from kestrel.binance.http.ratelimit import RateLimitTracker
from kestrel.core.clock import LiveClock
from kestrel.core.enums import Market
from kestrel.core.errors import InsufficientFunds, InvalidOrderError
from tests.sim.trading.conftest import KEY, QUIET, SECRET, SimFactory, best, quantity_for


async def test_our_client_places_queries_and_cancels_with_tracked_budgets(make_trading_sim: SimFactory) -> None:
    async with make_trading_sim(rates=QUIET) as sim:
        limits = RateLimitTracker.futures_defaults()
        async with BinanceHttpClient(sim.rest_url, LiveClock(), KEY, SECRET, limits=limits) as client:
            await client.sync_time(FUTURES["time"])
            bid, _ = best(sim, Market.FUTURES)
            quantity = quantity_for(Decimal(150), bid, Decimal("0.001"))
            order_params = {
                "symbol": "BTCUSDT",
                "side": "BUY",
                "type": "LIMIT",
                "timeInForce": "GTC",
                "quantity": quantity,
                "price": bid,
                "newClientOrderId": "kst-own-1",
            }
            order = await client.call(FUTURES["new_order"], order_params)
            assert order["status"] == "NEW"
            assert limits.usage()["orders/10s"] == (1, 300)  # taken from X-MBX-ORDER-COUNT-10S
            query = {"symbol": "BTCUSDT", "origClientOrderId": "kst-own-1"}
            assert (await client.call(FUTURES["query_order"], query))["orderId"] == order["orderId"]
            with pytest.raises(InvalidOrderError) as duplicate:
                await client.call(FUTURES["new_order"], order_params)
            assert duplicate.value.code == -4116
            cancelled = await client.call(FUTURES["cancel_order"], {"symbol": "BTCUSDT", "orderId": order["orderId"]})
            assert cancelled["status"] == "CANCELED"
            # a placed order answered 5xx is an unknown outcome: resolve it by querying, never by resending
            sim.trading.fail_next_orders(1, placed=True)
            with pytest.raises(UnknownOutcome):
                await client.call(FUTURES["new_order"], {**order_params, "newClientOrderId": "kst-own-2"})
            found = await client.call(FUTURES["query_order"], {"symbol": "BTCUSDT", "origClientOrderId": "kst-own-2"})
            assert found["status"] == "NEW"
            await client.call(FUTURES["leverage"], {"symbol": "BTCUSDT", "leverage": 1})
            too_big = {**order_params, "newClientOrderId": "kst-own-3", "quantity": Decimal(200)}  # > 100 000 USDT
            with pytest.raises(InsufficientFunds) as refused:
                await client.call(FUTURES["new_order"], too_big)
            assert refused.value.code == -2019
        async with BinanceHttpClient(sim.rest_url, LiveClock(), KEY, SECRET) as client:
            account = await client.call(SPOT["account"])
            assert {b["asset"] for b in account["balances"]} == {"USDT", "BTC"}
