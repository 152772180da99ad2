"""BinanceVenue: user-data event handling throughput, and command round trips against the simulator.

1. `user_events`: executionReport / ORDER_TRADE_UPDATE frames (the spec's example payloads, one order
   per pair NEW + TRADE) through the venue's stream dispatcher: decode (msgspec tagged union) → core
   OrderUpdate → OrderView merge → event handler. One core, no I/O.
2. `round_trip` (skipped with `--no-sim`): BinanceVenue against the local simulator over real sockets,
   USD-M BTCUSDT, one order at a time: the `submit_order` call itself (µs, what the caller pays before
   the request is scheduled), submit → NEW event (REST answer or stream, whichever is first), cancel →
   CANCELED event; p50 / p99 in ms.

    ./dev run python benchmarks/venue_roundtrip.py [--frames N] [--orders N] [--no-sim]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kestrel.binance.venue import BinanceVenue
from kestrel.binance.venue_settings import BinanceVenueSettings
from kestrel.config.paths import shared_data_dir
from kestrel.core.clock import LiveClock
from kestrel.core.enums import Market, OrderStatus, OrderType, Side, TimeInForce
from kestrel.core.identifiers import ClientOrderId
from kestrel.core.venue import OrderRequest, OrderUpdate, VenueEvent

SPOT_NEW = (
    b'{"e":"executionReport","E":1717000005013,"s":"BTCUSDT","c":"CID","S":"SELL","o":"LIMIT","f":"GTC",'
    b'"q":"0.02000000","p":"67850.00000000","P":"0.00000000","F":"0.00000000","g":-1,"C":"","x":"NEW",'
    b'"X":"NEW","r":"NONE","i":OID,"l":"0.00000000","z":"0.00000000","L":"0.00000000",'
    b'"n":"0","N":null,"T":1717000005012,"t":-1,"I":88120044512,"w":true,"m":false,"M":false,'
    b'"O":1716999990001,"Z":"0.00000000","Y":"0.00000000","Q":"0.00000000","W":1716999990001,"V":"EXPIRE_MAKER"}'
)
SPOT_TRADE = (
    b'{"e":"executionReport","E":1717000005013,"s":"BTCUSDT","c":"CID","S":"SELL","o":"LIMIT","f":"GTC",'
    b'"q":"0.02000000","p":"67850.00000000","P":"0.00000000","F":"0.00000000","g":-1,"C":"","x":"TRADE",'
    b'"X":"FILLED","r":"NONE","i":OID,"l":"0.02000000","z":"0.02000000","L":"67850.00000000",'
    b'"n":"1.35700000","N":"USDT","T":1717000005012,"t":OID,"I":88120044512,"w":false,"m":true,"M":true,'
    b'"O":1716999990001,"Z":"1357.00000000","Y":"1357.00000000","Q":"0.00000000","W":1716999990001,'
    b'"V":"EXPIRE_MAKER"}'
)
FUTURES_NEW = (
    b'{"e":"ORDER_TRADE_UPDATE","E":1717000006210,"T":1717000006208,"o":{"s":"BTCUSDT","c":"CID",'
    b'"S":"BUY","o":"LIMIT","f":"GTX","q":"0.010","p":"67700.00","ap":"0","sp":"0","x":"NEW",'
    b'"X":"NEW","i":OID,"l":"0","z":"0","L":"0","N":"USDT","n":"0",'
    b'"T":1717000006208,"t":0,"b":"0","a":"0","m":false,"R":false,"wt":"CONTRACT_PRICE","ot":"LIMIT",'
    b'"ps":"BOTH","cp":false,"rp":"0","pP":false,"si":0,"ss":0,"V":"EXPIRE_MAKER","pm":"NONE","gtd":0,"er":"0"}}'
)
FUTURES_TRADE = (
    b'{"e":"ORDER_TRADE_UPDATE","E":1717000006210,"T":1717000006208,"o":{"s":"BTCUSDT","c":"CID",'
    b'"S":"BUY","o":"LIMIT","f":"GTX","q":"0.010","p":"67700.00","ap":"67700.00","sp":"0","x":"TRADE",'
    b'"X":"FILLED","i":OID,"l":"0.010","z":"0.010","L":"67700.00","N":"USDT","n":"0.13540000",'
    b'"T":1717000006208,"t":OID,"b":"0","a":"0","m":true,"R":false,"wt":"CONTRACT_PRICE","ot":"LIMIT",'
    b'"ps":"BOTH","cp":false,"rp":"0","pP":false,"si":0,"ss":0,"V":"EXPIRE_MAKER","pm":"NONE","gtd":0,"er":"0"}}'
)


def offline_settings() -> BinanceVenueSettings:
    return BinanceVenueSettings("http://127.0.0.1:9", "http://127.0.0.1:9", "ws://127.0.0.1:9", "ws://127.0.0.1:9",
                                "ws://127.0.0.1:9", "key", "secret")  # fmt: skip


def bench_user_events(orders: int) -> dict[str, object]:
    venue = BinanceVenue(offline_settings(), LiveClock())
    received: list[VenueEvent] = []
    venue.set_event_handler(received.append)
    results: dict[str, object] = {}
    for name, market, new, trade in (
        ("spot", Market.SPOT, SPOT_NEW, SPOT_TRADE),
        ("futures", Market.FUTURES, FUTURES_NEW, FUTURES_TRADE),
    ):
        frames = []
        for n in range(orders):
            ids = str(1_000_000 + n).encode()
            client = f"kst-bench-{n}".encode()
            frames.append(new.replace(b"OID", ids).replace(b"CID", client))
            frames.append(trade.replace(b"OID", ids).replace(b"CID", client))
        received.clear()
        dispatch = venue.dispatcher.on_frame
        start = time.perf_counter()
        for frame in frames:
            dispatch(market, frame, 0)
        elapsed = time.perf_counter() - start
        assert len(received) == len(frames), (len(received), len(frames))
        assert all(isinstance(e, OrderUpdate) for e in received)
        venue.view.orders.clear()
        results[name] = {
            "frames": len(frames),
            "frames_per_s": round(len(frames) / elapsed),
            "us_per_frame": round(elapsed / len(frames) * 1e6, 2),
        }
    return results


async def bench_round_trip(orders: int) -> dict[str, object]:
    from tests.binance.venue_sim_helpers import best, instrument, quantity_for, trading_sim, venue_settings

    data = shared_data_dir()
    if data is None:
        return {"skipped": "no shared data folder"}
    market = Market.FUTURES
    async with trading_sim(data, markets=(market,)) as sim:
        venue = BinanceVenue(venue_settings(sim, (market,)), LiveClock())
        await venue.start()
        acked: dict[str, asyncio.Event] = {}
        ended: dict[str, asyncio.Event] = {}

        def on_event(event: VenueEvent) -> None:
            if isinstance(event, OrderUpdate):
                client = event.order.client_order_id
                if event.order.status is OrderStatus.NEW and client in acked:
                    acked[client].set()
                if event.order.status.is_terminal and client in ended:
                    ended[client].set()

        venue.set_event_handler(on_event)
        submit_ms: list[float] = []
        cancel_ms: list[float] = []
        call_us: list[float] = []
        try:
            bid, _ = best(sim, market)
            price = instrument(sim, market).round_price(bid * Decimal("0.98"))
            quantity = quantity_for(sim, market, Decimal(200))
            for n in range(orders):
                client = ClientOrderId(f"bench-{n}")
                acked[client] = asyncio.Event()
                ended[client] = asyncio.Event()
                request = OrderRequest(market, "BTCUSDT", Side.BUY, OrderType.LIMIT, quantity, price,
                                       time_in_force=TimeInForce.GTC, client_order_id=client)  # fmt: skip
                start = time.perf_counter()
                venue.submit_order(request)
                call_us.append((time.perf_counter() - start) * 1e6)  # what the strategy's thread pays
                await acked[client].wait()
                submit_ms.append((time.perf_counter() - start) * 1000)
                start = time.perf_counter()
                venue.cancel_order(market, "BTCUSDT", client)
                await ended[client].wait()
                cancel_ms.append((time.perf_counter() - start) * 1000)
        finally:
            await venue.stop()

    def summary(values: list[float]) -> dict[str, float]:
        ordered = sorted(values)
        return {
            "p50_ms": round(statistics.median(ordered), 3),
            "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 3),
            "max_ms": round(ordered[-1], 3),
        }

    calls = sorted(call_us)
    return {
        "orders": orders,
        "submit_call_us": {"p50": round(statistics.median(calls), 1), "p99": round(calls[int(len(calls) * 0.99)], 1)},
        "submit_to_ack": summary(submit_ms),
        "cancel_to_canceled": summary(cancel_ms),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20_000, help="orders per market (two frames each)")
    # 200: below the USD-M order budget (300 per 10 s, 90 % used at most); more orders wait for the next
    # window, which is the budget working, not latency
    parser.add_argument("--orders", type=int, default=200, help="round trips against the simulator")
    parser.add_argument("--no-sim", action="store_true", help="skip the simulator round trips")
    args = parser.parse_args()
    result: dict[str, object] = {
        "benchmark": "venue_roundtrip",
        "python": platform.python_version(),
        "user_events": bench_user_events(args.frames),
    }
    if not args.no_sim:
        result["round_trip"] = asyncio.run(bench_round_trip(args.orders))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
