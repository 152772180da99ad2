"""WebSocket conformance: raw and combined streams, USD-M routes, control messages, limits, ping/pong, 24 h cut."""

from __future__ import annotations

import asyncio

import aiohttp
import orjson
import pytest

from kestrel.core.enums import Market
from kestrel.sim import ProtocolLimits
from tests.sim.conftest import SimFactory, next_json, reply_to


async def _collect(ws: aiohttp.ClientWebSocketResponse, seconds: float) -> list[object]:
    values: list[object] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        try:
            message = await ws.receive(timeout=left)
        except TimeoutError:
            break
        if message.type is not aiohttp.WSMsgType.TEXT:
            break
        values.append(orjson.loads(message.data))
    return values


async def test_raw_stream_is_bare_and_combined_is_wrapped(make_sim: SimFactory) -> None:
    async with (
        make_sim(symbols=2) as sim,
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{sim.ws_url}/ws/btcusdt@bookTicker") as raw,
    ):
        message = await next_json(raw)
        assert set(message) == {"u", "s", "b", "B", "a", "A"} and message["s"] == "BTCUSDT"  # spot: no e/E/T
        async with session.ws_connect(
            f"{sim.ws_url}/stream?streams=btcusdt@bookTicker/btcusdt@depth@100ms"
        ) as combined:
            seen = set()
            for value in await _collect(combined, 1.5):
                assert isinstance(value, dict) and set(value) == {"stream", "data"}
                seen.add(value["stream"])
            assert seen == {"btcusdt@bookTicker", "btcusdt@depth@100ms"}


async def test_futures_routes_deliver_only_their_streams(make_sim: SimFactory) -> None:
    async with make_sim(symbols=2, markets=(Market.FUTURES,)) as sim, aiohttp.ClientSession() as session:
        streams = "btcusdt@bookTicker/btcusdt@aggTrade/btcusdt@markPrice@1s"
        async with (
            session.ws_connect(f"{sim.ws_url}/public/stream?streams={streams}") as public,
            session.ws_connect(f"{sim.ws_url}/market/stream?streams={streams}") as market,
            session.ws_connect(f"{sim.futures_ws_url}/stream?streams={streams}") as routeless,
        ):
            got_public, got_market, got_routeless = await asyncio.gather(
                _collect(public, 2.0), _collect(market, 2.0), _collect(routeless, 2.0)
            )
        assert {value["stream"] for value in got_public} == {"btcusdt@bookTicker"}  # type: ignore[index]
        assert {value["stream"] for value in got_market} == {"btcusdt@aggTrade", "btcusdt@markPrice@1s"}  # type: ignore[index]
        assert {value["stream"] for value in got_routeless} == {"btcusdt@bookTicker"}  # type: ignore[index]
        first = next(value["data"] for value in got_public)  # type: ignore[index]
        assert list(first) == ["e", "u", "s", "b", "B", "a", "A", "T", "E"]


async def test_subscribe_list_unsubscribe_and_properties(make_sim: SimFactory) -> None:
    async with (
        make_sim(symbols=2) as sim,
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{sim.ws_url}/ws") as ws,
    ):
        await ws.send_json({"method": "SUBSCRIBE", "params": ["btcusdt@aggTrade", "ethusdt@bookTicker"], "id": 1})
        assert await reply_to(ws, 1) == {"result": None, "id": 1}
        await ws.send_json({"method": "LIST_SUBSCRIPTIONS", "id": "abc"})
        assert await reply_to(ws, "abc") == {"result": ["btcusdt@aggTrade", "ethusdt@bookTicker"], "id": "abc"}
        await ws.send_json({"method": "GET_PROPERTY", "params": ["combined"], "id": 2})
        assert (await reply_to(ws, 2))["result"] is False
        await ws.send_json({"method": "SET_PROPERTY", "params": ["combined", True], "id": 3})
        assert await reply_to(ws, 3) == {"result": None, "id": 3}
        await ws.send_json({"method": "UNSUBSCRIBE", "params": ["btcusdt@aggTrade"], "id": 4})
        assert await reply_to(ws, 4) == {"result": None, "id": 4}
        await asyncio.sleep(0.2)
        for value in await _collect(ws, 0.8):
            assert value["stream"] == "ethusdt@bookTicker"  # type: ignore[index]  # wrapped now
        await ws.send_json({"method": "LIST_SUBSCRIPTIONS", "id": 5})
        assert (await reply_to(ws, 5))["result"] == ["ethusdt@bookTicker"]


@pytest.mark.parametrize(
    ("request_text", "code"),
    [
        ('{"method":"SUBSCRIBE","params":["btcusdt@aggTrade"]}', 2),  # no id
        ('{"method":"SUBSCRIBE","params":["btcusdt@aggTrade"],"id":true}', 2),
        ('{"method":"SUBSCRIBE","params":"btcusdt@aggTrade","id":7}', 2),
        ('{"method":"FLY","id":7}', 2),
        ('{"params":[],"id":7}', 2),
        ('{"method":"SET_PROPERTY","params":["colour",true],"id":7}', 0),
        ('{"method":"SET_PROPERTY","params":["combined","yes"],"id":7}', 1),
        ('{"method":"SUBSCRIBE","params":[', 3),
    ],
)
async def test_control_errors(make_sim: SimFactory, request_text: str, code: int) -> None:
    async with (
        make_sim(symbols=1, markets=(Market.SPOT,)) as sim,
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{sim.ws_url}/ws") as ws,
    ):
        await ws.send_str(request_text)
        reply = await next_json(ws)
        assert reply["error"]["code"] == code and isinstance(reply["error"]["msg"], str)
        assert "id" in reply


async def test_futures_ids_must_be_unsigned_integers(make_sim: SimFactory) -> None:
    async with (
        make_sim(symbols=1, markets=(Market.FUTURES,)) as sim,
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{sim.futures_ws_url}/ws") as ws,
    ):
        await ws.send_json({"method": "LIST_SUBSCRIPTIONS", "id": "abc"})
        assert (await next_json(ws))["error"]["code"] == 2
        await ws.send_json({"method": "LIST_SUBSCRIPTIONS", "id": 9})
        assert await next_json(ws) == {"result": [], "id": 9}


async def test_stream_cap(make_sim: SimFactory) -> None:
    async with (
        make_sim(symbols=1, limits=ProtocolLimits(streams_per_connection=3)) as sim,
        aiohttp.ClientSession() as session,
    ):
        too_many = "/".join(f"sym{n}usdt@trade" for n in range(4))
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(f"{sim.ws_url}/stream?streams={too_many}")
        assert refused.value.status == 400
        async with session.ws_connect(f"{sim.ws_url}/ws/btcusdt@trade/btcusdt@aggTrade") as ws:
            await ws.send_json({"method": "SUBSCRIBE", "params": ["a@trade", "b@trade"], "id": 1})
            assert (await reply_to(ws, 1))["error"]["code"] == 4
            await ws.send_json({"method": "SUBSCRIBE", "params": ["a@trade"], "id": 2})
            assert (await reply_to(ws, 2)) == {"result": None, "id": 2}
        assert sim.stats()["connections"]["rejected_too_many_streams"] == 2


async def test_incoming_message_rate_limit_closes(make_sim: SimFactory) -> None:
    async with (
        make_sim(symbols=1, markets=(Market.SPOT,)) as sim,
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{sim.ws_url}/ws") as ws,
    ):
        for number in range(5):  # spot allows 5 per second
            await ws.send_json({"method": "LIST_SUBSCRIPTIONS", "id": number})
            assert (await reply_to(ws, number))["result"] == []
        await ws.send_json({"method": "LIST_SUBSCRIPTIONS", "id": 99})
        message = await ws.receive(timeout=5)
        while message.type is aiohttp.WSMsgType.TEXT:
            message = await ws.receive(timeout=5)
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert ws.close_code == 1008
        assert sim.stats()["connections"]["closed_rate_limit"] == 1


async def test_server_pings_and_closes_without_pong(make_sim: SimFactory) -> None:
    fast_pings = ProtocolLimits(ping_interval_s_spot=0.3, pong_timeout_s_spot=0.9)  # 3.3 pongs/s: under 5/s
    async with (
        make_sim(symbols=1, markets=(Market.SPOT,), limits=fast_pings) as sim,
        aiohttp.ClientSession() as session,
    ):
        async with session.ws_connect(f"{sim.ws_url}/ws", autoping=True) as answering:
            # aiohttp answers pings inside receive(), so this connection must be read
            reader = asyncio.create_task(answering.receive())
            pings = 0
            async with session.ws_connect(f"{sim.ws_url}/ws", autoping=False) as silent:
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 3.0
                closed = False
                while loop.time() < deadline:
                    message = await silent.receive(timeout=3.0)
                    if message.type is aiohttp.WSMsgType.PING:
                        pings += 1
                        assert message.data.isdigit()  # we put the server time in the payload
                    elif message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                        closed = True
                        break
                assert closed and pings >= 2
            assert not answering.closed and not reader.done()  # it answered: still alive
            reader.cancel()
        assert sim.stats()["connections"]["closed_ping_timeout"] == 1


async def test_connection_lifetime_cut(make_sim: SimFactory) -> None:
    # "24 h" = 1 s; the ping cadence (scaled to milliseconds too) is kept out of the way
    slow_pings = ProtocolLimits(ping_interval_s_futures=864_000, pong_timeout_s_futures=864_000)
    async with (
        make_sim(symbols=1, markets=(Market.FUTURES,), time_scale=1.0 / 86_400, limits=slow_pings) as sim,
        aiohttp.ClientSession() as session,
    ):
        async with session.ws_connect(f"{sim.futures_ws_url}/ws/btcusdt@bookTicker") as ws:
            loop = asyncio.get_running_loop()
            started = loop.time()
            message = await ws.receive(timeout=5)
            while message.type is aiohttp.WSMsgType.TEXT:
                message = await ws.receive(timeout=5)
            lived = loop.time() - started
        assert 0.8 < lived < 6.0  # upper bound loose: a loaded machine delays the close
        assert sim.stats()["connections"]["closed_lifetime"] == 1


async def test_new_connection_budget(make_sim: SimFactory) -> None:
    async with (
        make_sim(symbols=1, limits=ProtocolLimits(connections_per_5min=2)) as sim,
        aiohttp.ClientSession() as session,
    ):
        first = await session.ws_connect(f"{sim.ws_url}/ws")
        second = await session.ws_connect(f"{sim.ws_url}/ws")
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(f"{sim.ws_url}/ws")
        assert refused.value.status == 429
        await first.close()
        await second.close()


async def test_a_second_client_library_reads_the_frames(make_sim: SimFactory) -> None:
    """The hand-built frames are plain RFC 6455: the `websockets` library (not aiohttp) reads them as text,
    and its automatic pong keeps a spot connection alive through the server's pings."""
    from websockets.asyncio.client import connect

    fast_pings = ProtocolLimits(ping_interval_s_spot=0.3, pong_timeout_s_spot=0.9)
    async with make_sim(symbols=1, markets=(Market.SPOT,), limits=fast_pings) as sim:
        async with connect(f"{sim.ws_url}/stream?streams=btcusdt@bookTicker/btcusdt@depth@100ms") as ws:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 1.5
            streams = set()
            while loop.time() < deadline:
                message = await asyncio.wait_for(ws.recv(), timeout=3)
                assert isinstance(message, str)
                streams.add(orjson.loads(message)["stream"])
            assert streams == {"btcusdt@bookTicker", "btcusdt@depth@100ms"}
            await ws.send('{"method":"LIST_SUBSCRIPTIONS","id":1}')
            while "result" not in (reply := orjson.loads(await asyncio.wait_for(ws.recv(), timeout=3))):
                pass
            assert reply == {"result": ["btcusdt@bookTicker", "btcusdt@depth@100ms"], "id": 1}
        assert sim.stats()["connections"]["closed_ping_timeout"] == 0


def test_scaled_pings_never_outpace_the_message_limit() -> None:
    from kestrel.sim import SimulatorOptions

    options = SimulatorOptions(time_scale=5 / 86_400)  # a "24 h" cut after 5 s
    assert options.scaled(86_400) == 5.0
    assert options.scaled_ping(20.0) == 1.0 and options.scaled_ping(600.0) == 1.0
    assert SimulatorOptions().scaled_ping(20.0) == 20.0
