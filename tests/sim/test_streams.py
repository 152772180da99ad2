"""Stream-name grammar and USD-M route membership (spec §1.1, §2)."""

from __future__ import annotations

import pytest

from kestrel.core.enums import Market
from kestrel.sim.streams import Route, StreamKind, delivered_on, is_valid_name, parse_stream


@pytest.mark.parametrize(
    ("name", "market", "kind", "detail"),
    [
        ("btcusdt@depth", Market.SPOT, StreamKind.DEPTH, 1000),
        ("btcusdt@depth", Market.FUTURES, StreamKind.DEPTH, 250),
        ("btcusdt@depth@100ms", Market.FUTURES, StreamKind.DEPTH, 100),
        ("btcusdt@depth@0ms", Market.FUTURES, StreamKind.DEPTH, 0),
        ("btcusdt@depth20@100ms", Market.SPOT, StreamKind.PARTIAL_DEPTH, 100),
        ("btcusdt@kline_1s", Market.SPOT, StreamKind.KLINE, "1s"),
        ("btcusdt@markPrice@1s", Market.FUTURES, StreamKind.MARK_PRICE, 1000),
        ("!markPrice@arr", Market.FUTURES, StreamKind.MARK_PRICE, 3000),
        ("!forceOrder@arr", Market.FUTURES, StreamKind.FORCE_ORDER, None),
    ],
)
def test_parse(name: str, market: Market, kind: StreamKind, detail: object) -> None:
    parsed = parse_stream(name, market)
    assert parsed is not None and parsed.kind is kind and is_valid_name(name)
    assert detail in (parsed.speed_ms, parsed.interval, None)


@pytest.mark.parametrize(
    ("name", "market"),
    [
        ("btcusdt@depth@0ms", Market.SPOT),  # real-time diffs are USD-M only
        ("btcusdt@depth@500ms", Market.SPOT),
        ("btcusdt@markPrice", Market.SPOT),
        ("btcusdt@kline_1s", Market.FUTURES),
        ("btcusdt@kline_7m", Market.FUTURES),
        ("BTCUSDT@trade", Market.SPOT),
        ("btcusdt@depth7", Market.SPOT),
    ],
)
def test_no_such_stream(name: str, market: Market) -> None:
    assert parse_stream(name, market) is None


def test_names_a_subscribe_refuses() -> None:
    assert not any(is_valid_name(name) for name in ("", "btcusdt", "a b@trade", 42, None, "x" * 300))


def test_routes() -> None:
    assert delivered_on("btcusdt@bookTicker", Market.FUTURES, Route.PUBLIC)
    assert not delivered_on("btcusdt@bookTicker", Market.FUTURES, Route.MARKET)
    assert delivered_on("btcusdt@aggTrade", Market.FUTURES, Route.MARKET)
    assert not delivered_on("btcusdt@aggTrade", Market.FUTURES, None)  # route-less = /public
    assert delivered_on("btcusdt@depth@100ms", Market.FUTURES, None)
    assert delivered_on("btcusdt@aggTrade", Market.SPOT, None)
