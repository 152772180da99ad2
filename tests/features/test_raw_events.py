from __future__ import annotations

from pathlib import Path

import pytest

from kestrel.core.enums import Market
from kestrel.core.errors import DataError
from kestrel.core.events import AggregateTrade, BookTicker, DepthSnapshot, DepthUpdate, Kline, MarkPrice, Trade
from kestrel.features.raw_events import frames_to_events
from kestrel.replay.raw import FrameKind, RawFrame, read_raw


def test_every_stream_of_the_recordings_becomes_a_core_event(shared_data: Path) -> None:
    usdm = list(frames_to_events(read_raw(shared_data / "hftbacktest/usdm/btcusdt_20230404.dat.gz")))
    kinds = {type(e) for e in usdm}
    assert kinds == {BookTicker, Trade, DepthUpdate, DepthSnapshot, MarkPrice}
    mark = next(e for e in usdm if isinstance(e, MarkPrice))
    assert mark.next_funding_time_ns % 3_600_000_000_000 == 0 and abs(mark.funding_rate) < 0.01
    update = next(e for e in usdm if isinstance(e, DepthUpdate))
    assert update.previous_final_update_id > 0 and update.ts_event < update.ts_init + 10**9
    spot = list(frames_to_events(read_raw(shared_data / "hftbacktest/spot/btcusdt_20240808.gz")))
    ticker = next(e for e in spot if isinstance(e, BookTicker))
    assert ticker.ts_event == ticker.ts_init  # spot bookTicker carries no event time
    assert next(e for e in spot if isinstance(e, DepthUpdate)).previous_final_update_id == -1
    crypto = list(frames_to_events(read_raw(shared_data / "cryptofeed/BINANCE_FUTURES.ws.1.0.gz")))
    assert {type(e) for e in crypto} == {DepthUpdate, BookTicker, AggregateTrade, Kline}
    assert all(e.market is Market.FUTURES for e in crypto)
    coinm = list(frames_to_events(read_raw(shared_data / "hftbacktest/coinm/btcusd_perp_20240808.gz")))
    assert coinm == []  # COIN-M is not a Kestrel market


def test_malformed_frames_name_their_source() -> None:
    frame = RawFrame(1, FrameKind.STREAM, Market.SPOT, "BTCUSDT", "btcusdt@trade", b'{"p":"1"}', "bad.gz")
    with pytest.raises(DataError, match=r"bad\.gz: cannot read a btcusdt@trade frame"):
        list(frames_to_events([frame]))
