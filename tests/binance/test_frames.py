"""Frame decoding on real recorded Binance frames, and on every kind of bad input."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from kestrel.binance.websocket.frames import (
    ControlReply,
    FrameDecoder,
    MalformedFrame,
    ServerShutdown,
    StreamKind,
    UnknownStream,
    decode_depth_snapshot,
    decode_payload,
    stream_kind,
)
from kestrel.core.enums import Market, Side
from kestrel.core.events import (
    AggregateTrade,
    BookTicker,
    DepthUpdate,
    Kline,
    Liquidation,
    MarkPrice,
    Trade,
)
from kestrel.replay.raw import FrameKind, read_raw

MS = 1_000_000


def envelope(stream: str, data: bytes) -> bytes:
    return b'{"stream":"' + stream.encode() + b'","data":' + data + b"}"


def first_frames(path: Path, limit: int = 5000) -> dict[str, tuple[str, bytes, int]]:
    """The first frame of each stream kind in a recording: kind -> (stream, data json, ts_local)."""
    found: dict[str, tuple[str, bytes, int]] = {}
    for number, frame in enumerate(read_raw(path)):
        if number >= limit:
            break
        if frame.kind is FrameKind.STREAM:
            kind = stream_kind(frame.stream)
            assert kind is not None, frame.stream
            found.setdefault(kind.value, (frame.stream, frame.payload, frame.ts_local_ns))
    return found


def test_stream_kinds() -> None:
    assert stream_kind("btcusdt@depth@100ms") is StreamKind.DEPTH
    assert stream_kind("btcusdt@depth@0ms") is StreamKind.DEPTH
    assert stream_kind("btcusdt@depth") is StreamKind.DEPTH
    assert stream_kind("btcusdt@depth20@100ms") is None
    assert stream_kind("btcusdt@kline_1m") is StreamKind.KLINE
    assert stream_kind("btcusdt@markPrice@1s") is StreamKind.MARK_PRICE
    assert stream_kind("btcusdt@bookTicker") is StreamKind.BOOK_TICKER
    assert stream_kind("!markPrice@arr") is None
    assert stream_kind("nonsense") is None


def test_usdm_depth_book_ticker_trade(shared_data: Path) -> None:
    frames = first_frames(shared_data / "hftbacktest/usdm/btcusdt_20240808.gz")
    decoder = FrameDecoder(Market.FUTURES)

    stream, data, ts = frames["depth"]
    depth = decoder.decode(envelope(stream, data), ts)
    raw = orjson.loads(data)
    assert isinstance(depth, DepthUpdate)
    assert (depth.first_update_id, depth.final_update_id, depth.previous_final_update_id) == (
        raw["U"], raw["u"], raw["pu"]
    )  # fmt: skip
    assert depth.ts_event == raw["E"] * MS and depth.ts_init == ts
    assert depth.bids == [(float(p), float(q)) for p, q in raw["b"]]
    assert depth.asks == [(float(p), float(q)) for p, q in raw["a"]]
    assert depth.market is Market.FUTURES and depth.symbol == "BTCUSDT"

    stream, data, ts = frames["bookTicker"]
    tick = decoder.decode(envelope(stream, data), ts)
    raw = orjson.loads(data)
    assert isinstance(tick, BookTicker)
    assert tick.update_id == raw["u"] and tick.bid_price == float(raw["b"]) and tick.ask_qty == float(raw["A"])
    assert tick.ts_event == raw["E"] * MS

    stream, data, ts = frames["trade"]
    trade = decoder.decode(envelope(stream, data), ts)
    raw = orjson.loads(data)
    assert isinstance(trade, Trade)
    assert trade.trade_id == raw["t"] and trade.price == float(raw["p"]) and trade.quantity == float(raw["q"])
    assert trade.buyer_is_maker is raw["m"] and trade.ts_event == raw["T"] * MS


def test_spot_book_ticker_has_no_exchange_time(shared_data: Path) -> None:
    stream, data, ts = first_frames(shared_data / "hftbacktest/spot/btcusdt_20240808.gz")["bookTicker"]
    tick = FrameDecoder(Market.SPOT).decode(envelope(stream, data), ts)
    assert isinstance(tick, BookTicker)
    assert tick.ts_event == tick.ts_init == ts
    stream, data, ts = first_frames(shared_data / "hftbacktest/spot/btcusdt_20240808.gz")["depth"]
    depth = FrameDecoder(Market.SPOT).decode(envelope(stream, data), ts)
    assert isinstance(depth, DepthUpdate) and depth.previous_final_update_id == -1


def test_agg_trade_and_kline(shared_data: Path) -> None:
    frames = first_frames(shared_data / "cryptofeed/BINANCE_FUTURES.ws.1.0.gz")
    decoder = FrameDecoder(Market.FUTURES)
    stream, data, ts = frames["aggTrade"]
    agg = decoder.decode(envelope(stream, data), ts)
    raw = orjson.loads(data)
    assert isinstance(agg, AggregateTrade)
    assert (agg.aggregate_id, agg.first_trade_id, agg.last_trade_id) == (raw["a"], raw["f"], raw["l"])
    assert agg.aggressor is (Side.SELL if raw["m"] else Side.BUY)
    stream, data, ts = frames["kline"]
    kline = decoder.decode(envelope(stream, data), ts)
    bar = orjson.loads(data)["k"]
    assert isinstance(kline, Kline)
    assert kline.interval == "1m" and kline.open_time_ns == bar["t"] * MS and kline.close_time_ns == bar["T"] * MS
    assert (kline.open, kline.high, kline.low, kline.close) == tuple(float(bar[k]) for k in "ohlc")
    assert kline.trade_count == bar["n"] and kline.is_closed is bar["x"]


def test_mark_price(shared_data: Path) -> None:
    stream, data, ts = first_frames(shared_data / "hftbacktest/usdm/btcusdt_20230404.dat.gz")["markPrice"]
    mark = FrameDecoder(Market.FUTURES).decode(envelope(stream, data), ts)
    raw = orjson.loads(data)
    assert isinstance(mark, MarkPrice)
    assert mark.mark_price == float(raw["p"]) and mark.funding_rate == float(raw["r"])
    assert mark.next_funding_time_ns == raw["T"] * MS


def test_force_order_example_from_spec() -> None:
    data = (
        b'{"e":"forceOrder","E":1717000003105,"o":{"s":"ETHUSDT","S":"SELL","o":"LIMIT","f":"IOC","q":"12.408",'
        b'"p":"3701.17","ap":"3709.82","X":"FILLED","l":"4.118","z":"12.408","T":1717000003101}}'
    )
    event = FrameDecoder(Market.FUTURES).decode(envelope("ethusdt@forceOrder", data), 5)
    assert isinstance(event, Liquidation)
    assert event.side is Side.SELL and event.quantity == 12.408 and event.average_price == 3709.82
    assert event.ts_event == 1717000003105 * MS


def test_text_frames_and_reordered_envelopes() -> None:
    data = '{"u":5,"s":"BTCUSDT","b":"1.5","B":"2","a":"1.6","A":"3"}'
    decoder = FrameDecoder(Market.SPOT)
    as_text = decoder.decode('{"stream":"btcusdt@bookTicker","data":' + data + "}", 7)
    reordered = decoder.decode('{"data":' + data + ',"stream":"btcusdt@bookTicker"}', 7)
    assert as_text == reordered
    assert isinstance(as_text, BookTicker) and as_text.bid_price == 1.5


def test_control_replies_and_shutdown() -> None:
    decoder = FrameDecoder(Market.SPOT)
    reply = decoder.decode(b'{"result":null,"id":1}', 0)
    assert isinstance(reply, ControlReply) and reply.id == 1 and not reply.is_error
    listing = decoder.decode(b'{"result":["btcusdt@aggTrade"],"id":3}', 0)
    assert isinstance(listing, ControlReply) and listing.result == ["btcusdt@aggTrade"]
    error = decoder.decode(b'{"code":2,"msg":"Invalid request","id":null}', 0)
    assert isinstance(error, ControlReply) and error.is_error and error.code == 2
    assert isinstance(decoder.decode(b'{"e":"serverShutdown","E":1717000000000}', 0), ServerShutdown)
    wrapped = b'{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":1}}'
    assert isinstance(decoder.decode(wrapped, 0), ServerShutdown)


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"not json",
        b"[1,2,3]",
        b'{"stream":"btcusdt@trade","data":{"e":"trade"}}',  # missing fields
        b'{"stream":"btcusdt@trade","data":{"E":1,"s":"X","t":"abc","p":"1","q":"1","T":1,"m":false}}',
        b'{"stream":"btcusdt@depth@100ms","data":{"E":1,"s":"X","U":1,"u":2,"b":[["1"]],"a":[]}}',
        b'{"stream":"btcusdt@bookTicker","data":',
        b'{"stream":"btcusdt',
        b'{"stream":"ethusdt@forceOrder","data":{"E":1,"o":{"s":"E","S":"UP","o":"L","f":"I","q":"1",'
        b'"p":"1","ap":"1","X":"F","z":"1","T":1}}}',
        b'{"hello":"world"}',
        b'{"stream":5,"data":{}}',
    ],
)
def test_malformed_frames_raise_malformed(frame: bytes) -> None:
    decoder = FrameDecoder(Market.FUTURES)
    decoder.decode(b'{"stream":"btcusdt@trade","data":{"E":1,"s":"X","t":1,"p":"1","q":"1","T":1,"m":false}}', 0)
    with pytest.raises(MalformedFrame):
        decoder.decode(frame, 0)


def test_unknown_streams_and_event_types() -> None:
    decoder = FrameDecoder(Market.FUTURES)
    with pytest.raises(UnknownStream):
        decoder.decode(b'{"stream":"btcusdt@depth20@100ms","data":{}}', 0)
    with pytest.raises(UnknownStream):
        decoder.decode(b'{"stream":"!miniTicker@arr","data":[]}', 0)
    with pytest.raises(UnknownStream):
        decoder.decode(b'{"e":"24hrMiniTicker","E":1}', 0)
    with pytest.raises(UnknownStream):
        decode_payload("btcusdt@ticker", b"{}", Market.SPOT, 0)


def test_payload_and_snapshot_decoding(shared_data: Path) -> None:
    frames = list(read_raw(shared_data / "cryptofeed/BINANCE_FUTURES.http.0.0.gz"))
    snapshot = decode_depth_snapshot(frames[0].payload, Market.FUTURES, frames[0].symbol, frames[0].ts_local_ns)
    raw = orjson.loads(frames[0].payload)
    assert snapshot.last_update_id == raw["lastUpdateId"]
    assert snapshot.bids[0] == (float(raw["bids"][0][0]), float(raw["bids"][0][1]))
    assert snapshot.ts_event == raw["E"] * MS
    spot = next(read_raw(shared_data / "cryptofeed/BINANCE.http.0.0.gz"))
    spot_snapshot = decode_depth_snapshot(spot.payload, Market.SPOT, spot.symbol, 99)
    assert spot_snapshot.ts_event == 99  # spot snapshots carry no exchange time
    with pytest.raises(MalformedFrame):
        decode_depth_snapshot(b'{"lastUpdateId":"x"}', Market.SPOT, "X", 0)
    with pytest.raises(MalformedFrame):
        decode_payload("btcusdt@aggTrade", b'{"a":1}', Market.SPOT, 0)


def test_an_event_of_another_type_under_a_known_stream_is_an_unknown_event_type() -> None:
    decoder = FrameDecoder(Market.FUTURES)
    with pytest.raises(UnknownStream, match="simulatorUnknownEvent"):
        decoder.decode(b'{"stream":"btcusdt@bookTicker","data":{"e":"simulatorUnknownEvent","E":1,"s":"BTCUSDT"}}', 0)
    with pytest.raises(MalformedFrame):  # the right type, broken fields: malformed
        decoder.decode(b'{"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":"x"}}', 0)
    with pytest.raises(MalformedFrame):  # cut in half
        decoder.decode(b'{"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":1,"s":"BT}', 0)
