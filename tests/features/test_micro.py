"""Microstructure features: hand-checked formulas, book sync, and streaming = batch (polars, Parquet,
DuckDB) on the shared raw Binance recordings."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from kestrel.core.enums import Market
from kestrel.core.events import BookTicker, DepthSnapshot, DepthUpdate, MarkPrice, OpenInterest, Trade
from kestrel.features.io import query_duckdb
from kestrel.features.lookahead import check_lookahead, cut_times
from kestrel.features.micro import MicroSpec, MicrostructureFeatures, compute_micro_features, events_table
from kestrel.features.raw_events import frames_to_events
from kestrel.replay.raw import merge_by_local_time, read_raw

F = Market.FUTURES
MS = 1_000_000
T0 = 1_700_000_000_000_000_000


def _top(t_ms: int, bid: float, bq: float, ask: float, aq: float) -> BookTicker:
    return BookTicker(F, "X", t_ms, bid, bq, ask, aq, T0 + t_ms * MS - 5 * MS, T0 + t_ms * MS)


def _trade(t_ms: int, price: float, qty: float, sell: bool) -> Trade:
    return Trade(F, "X", t_ms, price, qty, sell, T0 + t_ms * MS - 5 * MS, T0 + t_ms * MS)


def test_top_of_book_and_trade_features_by_hand() -> None:
    engine = MicrostructureFeatures(MicroSpec(windows_ms=(1000, 60_000), liquidity_threshold_usdt=1000.0), F)
    engine.on_event(_top(0, 100.0, 3.0, 100.2, 1.0))
    v = engine.as_dict()
    assert v["spread_bps"] == pytest.approx(0.2 / 100.1 * 1e4)
    assert v["qi"] == pytest.approx(0.5)
    microprice = (100.2 * 3 + 100.0 * 1) / 4
    assert v["microprice_bps"] == pytest.approx((microprice - 100.1) / 100.1 * 1e4)
    assert v["liq_score"] == pytest.approx(min(1 * 100.1 / 1000, 1))
    assert v["latency_ms"] == pytest.approx(5.0) and v["timestamp_ok"] == 1.0
    # bid up with more size, ask unchanged: OFI e = bq_new − 0 (bid rose) − aq (ask same) + aq_prev
    engine.on_event(_top(0, 100.1, 2.0, 100.2, 1.5))
    assert engine.as_dict()["ofi_1000ms"] == pytest.approx(2.0 - 1.5 + 1.0)
    engine.on_event(_trade(0, 100.2, 2.0, sell=False))
    engine.on_event(_trade(0, 100.1, 1.0, sell=True))
    v = engine.as_dict()
    assert v["trade_sign_1000ms"] == pytest.approx(0.0)
    vwap = (100.2 * 2 + 100.1) / 3
    assert v["vwap_distance_bps_1000ms"] == pytest.approx((100.15 - vwap) / vwap * 1e4)
    # one second later every 1 s sum has decayed by e^-1; the trade rate is counts / τ
    engine.on_event(_top(1000, 100.1, 2.0, 100.2, 1.5))
    v = engine.as_dict()
    assert v["trade_rate_1000ms"] == pytest.approx(2 * math.exp(-1), rel=1e-12)
    assert v["trade_rate_60000ms"] == pytest.approx(2 * math.exp(-1 / 60) / 60, rel=1e-12)
    assert v["ofi_1000ms"] == pytest.approx(1.5 * math.exp(-1), rel=1e-12)  # quotes unchanged: e = 0


def test_book_features_and_cancel_new_ratio_by_hand() -> None:
    engine = MicrostructureFeatures(MicroSpec(windows_ms=(1000,)), F)
    bids = [(100.0 - 0.01 * i, 1.0 + i) for i in range(30)]
    asks = [(100.02 + 0.01 * i, 2.0) for i in range(30)]
    engine.on_event(DepthSnapshot(F, "X", 10, bids, asks, T0, T0))
    v = engine.as_dict()
    bid5, ask5 = sum(1.0 + i for i in range(5)), 10.0
    assert v["queue_imbalance_5"] == pytest.approx((bid5 - ask5) / (bid5 + ask5))
    mid = 100.01
    within = [(p, q) for p, q in bids + asks if abs(p - mid) / mid * 1e4 <= 25]
    near = [(p, q) for p, q in within if abs(p - mid) / mid * 1e4 <= 5]
    assert v["near_touch_void"] == pytest.approx(1 - sum(p * q for p, q in near) / sum(p * q for p, q in within))
    cumulative, xy, xx = 0.0, 0.0, 0.0
    for p, q in bids[:10]:
        distance = (mid - p) / mid * 1e4
        cumulative += p * q
        xy, xx = xy + distance * cumulative, xx + distance * distance
    assert v["depth_slope_bid"] == pytest.approx(xy / xx)
    # a diff: bid level 100.0 from 1 → 4 (+3 added), ask 100.02 removed (2, of which 0.5 traded)
    engine.on_event(_trade(0, 100.02, 0.5, sell=False))
    engine.on_event(DepthUpdate(F, "X", 10, 11, 10, [(100.0, 4.0)], [(100.02, 0.0)], T0, T0))
    assert engine.as_dict()["cancel_new_ratio_1000ms"] == pytest.approx(1.5 / 3.0)
    assert engine.as_dict()["queue_imbalance_5"] == pytest.approx((bid5 + 3 - 10.0) / (bid5 + 3 + 10.0))


def test_book_sync_buffers_bridges_and_detects_gaps() -> None:
    engine = MicrostructureFeatures(MicroSpec(), F)
    assert not engine.on_event(DepthUpdate(F, "X", 5, 12, 4, [(99.0, 1.0)], [], T0, T0))  # buffered
    assert engine.on_event(DepthSnapshot(F, "X", 10, [(100.0, 1.0)], [(101.0, 1.0)], T0, T0 + 1))
    assert engine.sync.synced and engine.sync.gaps == 0
    assert engine.on_event(DepthUpdate(F, "X", 13, 14, 12, [(100.0, 2.0)], [], T0, T0 + 2))
    assert not engine.on_event(DepthUpdate(F, "X", 16, 17, 15, [(100.0, 3.0)], [], T0, T0 + 3))  # pu ≠ 14
    assert engine.sync.gaps == 1 and not engine.sync.synced


def test_funding_oi_and_quality() -> None:
    engine = MicrostructureFeatures(MicroSpec(windows_ms=(1000,), max_latency_ms=100), F)
    next_funding = T0 + 3600 * 10**9
    engine.on_event(MarkPrice(F, "X", 100.5, 100.0, 100.4, 0.0001, next_funding, T0, T0 + MS))
    assert engine.as_dict()["mark_basis_bps"] == pytest.approx(50.0)
    assert math.isnan(engine.as_dict()["funding_delta"])
    engine.on_event(MarkPrice(F, "X", 100.5, 100.0, 100.4, 0.0002, next_funding + 8 * 3600 * 10**9, T0, T0 + 2 * MS))
    assert engine.as_dict()["funding_delta"] == pytest.approx(0.0002 - 0.0001)
    engine.on_event(OpenInterest(F, "X", 1000.0, T0, T0 + 3 * MS))
    engine.on_event(OpenInterest(F, "X", 1100.0, T0, T0 + 4 * MS))
    assert engine.as_dict()["oi_delta"] == pytest.approx(0.1)
    engine.on_event(OpenInterest(F, "X", 1100.0, T0 + 10 * MS, T0 + 300 * MS))  # 290 ms late
    assert engine.as_dict()["timestamp_ok"] == 0.0
    engine.on_event(OpenInterest(F, "X", 1100.0, T0 + 5 * MS, T0 + 301 * MS))  # older than the last one
    assert engine.as_dict()["timestamp_ok"] == 0.0


RECORDINGS = [
    ("hftbacktest/usdm/btcusdt_20240808.gz", F),
    ("hftbacktest/usdm/btcusdt_20230404.dat.gz", F),
    ("hftbacktest/spot/ethusdt_20240808.gz", Market.SPOT),
]


@pytest.mark.parametrize(("name", "market"), RECORDINGS)
def test_streaming_equals_batch_on_real_recordings(
    shared_data: Path, tmp_path: Path, name: str, market: Market
) -> None:
    events = list(frames_to_events(read_raw(shared_data / name)))
    spec = MicroSpec()
    engine = MicrostructureFeatures(spec, market)
    streamed, changed = [], []
    for index, event in enumerate(events):
        if engine.on_event(event):
            streamed.append(engine.values.copy())
            changed.append(index)
    assert engine.sync.gaps == 0 and engine.sync.synced
    table = events_table(events, market)
    path = tmp_path / "events.parquet"
    table.write_parquet(path)
    for source in (table, pl.read_parquet(path), query_duckdb(f"SELECT * FROM '{path}' ORDER BY ts_init, event_index")):
        batch = compute_micro_features(source, spec)
        last = batch.group_by("event_index", maintain_order=True).last()
        assert last["event_index"].to_list() == changed
        assert np.array_equal(last.select(spec.names).to_numpy(), np.array(streamed), equal_nan=True)
    values = engine.as_dict()
    assert 0 < values["spread_bps"] < 5 and -1 <= values["qi"] <= 1 and 0 <= values["near_touch_void"] <= 1
    marks = [e for e in events if isinstance(e, MarkPrice)]
    if marks:  # the 2023 USD-M file carries markPrice@1s
        assert values["funding_rate"] == marks[-1].funding_rate
        assert values["mark_basis_bps"] == pytest.approx((marks[-1].mark_price / marks[-1].index_price - 1) * 1e4)


def test_spot_merged_with_cryptofeed_layout_and_sampling(shared_data: Path) -> None:
    frames = merge_by_local_time(
        [
            read_raw(shared_data / "cryptofeed/BINANCE_FUTURES.ws.1.0.gz"),
            read_raw(shared_data / "cryptofeed/BINANCE_FUTURES.http.0.0.gz"),
        ]
    )
    events = [e for e in frames_to_events(frames) if e.symbol == "SUSHIUSDT"]
    table = events_table(events, F)
    sampled = compute_micro_features(table, MicroSpec(), sample_every_ns=1_000_000_000)
    assert 25 <= sampled.height <= 31 and (sampled["ts"] % 1_000_000_000 == 0).all()
    full = compute_micro_features(table, MicroSpec())
    # a grid row is the state after the last event received by its time
    row = sampled.row(10, named=True)
    before = full.filter(pl.col("ts") <= row["ts"]).row(-1, named=True)
    assert all(row[k] == before[k] or (math.isnan(row[k]) and math.isnan(before[k])) for k in MicroSpec().names)


def test_micro_batch_has_no_lookahead(shared_data: Path) -> None:
    events = list(frames_to_events(read_raw(shared_data / "hftbacktest/spot/btcusdt_20240808.gz")))[:20_000]
    table = events_table(events, Market.SPOT)

    def compute(until: int | None) -> pl.DataFrame:
        part = table if until is None else table.filter(pl.col("ts_init") <= until)
        return compute_micro_features(part, MicroSpec())

    report = check_lookahead(compute, cut_times(table["ts_init"].to_numpy(), 5), keys=("ts", "row"))
    assert report.passed, report.violations


def test_book_matches_a_plain_dictionary_replay(shared_data: Path) -> None:
    """The compiled book after every diff of a real recording equals a dict-of-levels replay."""
    from kestrel.features import micro_kernels as kernels

    events = list(frames_to_events(read_raw(shared_data / "hftbacktest/usdm/ethusdt_20240808.gz")))
    engine = MicrostructureFeatures(MicroSpec(book_capacity=100_000), F)  # no level ever dropped
    reference: dict[str, dict[float, float]] = {"bids": {}, "asks": {}}
    for event in events:
        engine.on_event(event)
        if isinstance(event, DepthSnapshot):
            reference = {"bids": dict(event.bids), "asks": dict(event.asks)}
            pending = [e for e in events if isinstance(e, DepthUpdate) and e.ts_init <= event.ts_init]
            for update in pending:  # the diffs buffered before the snapshot, as the synchroniser applies them
                if update.final_update_id >= event.last_update_id:
                    for side, levels in (("bids", update.bids), ("asks", update.asks)):
                        for price, quantity in levels:
                            reference[side][price] = quantity
        elif isinstance(event, DepthUpdate) and reference["bids"]:
            for side, levels in (("bids", event.bids), ("asks", event.asks)):
                for price, quantity in levels:
                    reference[side][price] = quantity
    bids = sorted((p for p, q in reference["bids"].items() if q > 0), reverse=True)
    asks = sorted(p for p, q in reference["asks"].items() if q > 0)
    count_bids, count_asks = int(engine._n[kernels.N_BID_COUNT]), int(engine._n[kernels.N_ASK_COUNT])
    assert count_bids == len(bids) and count_asks == len(asks)
    assert engine._book[0, :count_bids][::-1].tolist() == bids
    assert (-engine._book[2, :count_asks][::-1]).tolist() == asks
    assert engine._book[1, count_bids - 1] == reference["bids"][bids[0]]
