"""The Redis hot cache and streams, against real Redis servers."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import redis

from kestrel.core.enums import Market
from kestrel.core.events import BookTicker
from kestrel.storage.redis_cache import RedisPublisher
from tests.conftest import IN_CI

pytestmark = pytest.mark.redis


def top(update_id: int, bid: float = 100.0) -> BookTicker:
    return BookTicker(
        Market.FUTURES, "BTCUSDT", update_id, bid, 2.0, bid + 0.1, 3.0, update_id * 10, update_id * 10 + 5
    )


async def test_top_of_book_and_streams_under_documented_keys(redis_url: str) -> None:
    publisher = RedisPublisher(redis_url, ttl_s=5, flush_interval_ms=10, stream_maxlen=1000)
    await publisher.start()
    for update_id in range(1, 6):
        publisher.publish_top("futures:BTCUSDT", top(update_id, 100.0 + update_id))
        publisher.publish_top("spot:ETHUSDT", top(update_id, 10.0))
        publisher.publish_depth("futures:BTCUSDT", update_id, 1, 2, [(100.0, 1.0)], [(100.1, 2.0)])
        await asyncio.sleep(0.03)  # one micro-batch each
    await publisher.close()
    client = redis.Redis.from_url(redis_url)
    cached = orjson.loads(client.get("mkt:top:futures:BTCUSDT"))
    assert cached["u"] == 5 and cached["bid"] == 105.0 and cached["ask"] == pytest.approx(105.1)
    assert cached["mid"] == pytest.approx(105.05) and cached["depth_top1_usdt"] == pytest.approx(2.0 * 105.05)
    assert 0 < client.ttl("mkt:top:futures:BTCUSDT") <= 5
    ticks = client.xrange("mkt:tick:futures:BTCUSDT")
    assert [int(fields[b"u"]) for _, fields in ticks] == [1, 2, 3, 4, 5]
    depth = client.xrange("mkt:depth:futures:BTCUSDT")
    assert len(depth) == 5 and orjson.loads(depth[-1][1][b"bids"]) == [[100.0, 1.0]]
    assert client.exists("mkt:top:spot:ETHUSDT")
    assert publisher.stats.entries_written == 15 and publisher.stats.failed_flushes == 0
    client.close()


async def test_ticks_are_coalesced_per_micro_batch(redis_url: str) -> None:
    publisher = RedisPublisher(redis_url, flush_interval_ms=1000)
    await publisher.start()
    for update_id in range(1, 101):
        publisher.publish_top("futures:BTCUSDT", top(update_id))
    await publisher.flush()
    await publisher.close()
    client = redis.Redis.from_url(redis_url)
    assert [int(f[b"u"]) for _, f in client.xrange("mkt:tick:futures:BTCUSDT")] == [100]
    client.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def own_redis(redis_url: str, tmp_path: Path) -> Iterator[tuple[int, list[subprocess.Popen[bytes]]]]:
    """A private redis-server we may stop and restart (never the shared one)."""
    binary = shutil.which("redis-server")
    if binary is None:
        if IN_CI:
            pytest.fail("redis-server is needed under CI")
        pytest.skip("redis-server binary not found")
    port = _free_port()
    servers: list[subprocess.Popen[bytes]] = []
    yield port, servers
    for server in servers:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=10)


def _start_redis(port: int, directory: Path) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(directory)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if redis.Redis(port=port, socket_connect_timeout=0.2).ping():
                return server
        except redis.ConnectionError:
            time.sleep(0.05)
    raise AssertionError("redis-server did not start")


async def test_a_redis_restart_loses_no_in_process_data_and_publishing_resumes(
    own_redis: tuple[int, list[subprocess.Popen[bytes]]], tmp_path: Path
) -> None:
    port, servers = own_redis
    servers.append(_start_redis(port, tmp_path))
    url = f"redis://127.0.0.1:{port}/0"
    publisher = RedisPublisher(url, flush_interval_ms=10, retry_max_s=0.2)
    await publisher.start()
    for update_id in range(1, 21):
        publisher.publish_top("futures:BTCUSDT", top(update_id))
        await asyncio.sleep(0.02)
    servers[0].kill()  # Redis dies mid-run
    servers[0].wait(timeout=10)
    for update_id in range(21, 41):  # ingest goes on; nothing blocks
        started = time.monotonic()
        publisher.publish_top("futures:BTCUSDT", top(update_id))
        assert time.monotonic() - started < 0.01
        await asyncio.sleep(0.02)
    assert publisher.stats.failed_flushes > 0 and not publisher.stats.connected
    assert publisher.pending > 0
    servers.append(_start_redis(port, tmp_path))  # back, empty (no persistence)
    deadline = time.monotonic() + 10
    while publisher.stats.reconnects == 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    for update_id in range(41, 46):
        publisher.publish_top("futures:BTCUSDT", top(update_id))
        await asyncio.sleep(0.02)
    await publisher.close()
    assert publisher.stats.reconnects == 1 and publisher.stats.dropped == 0
    client = redis.Redis(port=port)
    ids = [int(f[b"u"]) for _, f in client.xrange("mkt:tick:futures:BTCUSDT")]
    # everything published while Redis was down arrived once it was back, in order, then the new ones
    assert ids[-5:] == [41, 42, 43, 44, 45]
    assert 40 in ids and ids == sorted(ids)
    assert orjson.loads(client.get("mkt:top:futures:BTCUSDT"))["u"] == 45
    client.close()
