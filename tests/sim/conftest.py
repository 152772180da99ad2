"""Helpers for simulator tests: start a real simulator on loopback, talk to it with aiohttp."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from kestrel.sim import MarketSimulator, SimulatorOptions

SimFactory = Callable[..., Any]


@pytest.fixture
def make_sim(shared_data: Path) -> SimFactory:
    """`async with make_sim(symbols=3, ...) as sim:` — a simulator on free loopback ports."""

    @asynccontextmanager
    async def factory(**values: Any) -> AsyncIterator[MarketSimulator]:
        values.setdefault("data_dir", shared_data)
        async with MarketSimulator(SimulatorOptions(**values)) as sim:
            yield sim

    return factory


async def get_json(session: aiohttp.ClientSession, url: str) -> tuple[int, Any, aiohttp.typedefs.LooseHeaders]:
    async with session.get(url) as response:
        return response.status, orjson.loads(await response.read()), response.headers


async def next_json(ws: aiohttp.ClientWebSocketResponse, timeout: float = 5.0) -> Any:
    message = await ws.receive(timeout=timeout)
    assert message.type is aiohttp.WSMsgType.TEXT, message
    return orjson.loads(message.data)


async def reply_to(ws: aiohttp.ClientWebSocketResponse, request_id: Any, timeout: float = 5.0) -> Any:
    """Skip stream data until the control reply with `request_id` arrives."""
    while True:
        value = await next_json(ws, timeout)
        is_reply = isinstance(value, dict) and "id" in value and ("result" in value or "error" in value)
        if is_reply and value["id"] == request_id:
            return value


class ReferenceBook:
    """A client-side book synced exactly per spec §3 (written for the tests, independent of the sim)."""

    def __init__(self, futures: bool) -> None:
        self.futures = futures
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}
        self.update_id: int | None = None
        self.snapshot_id: int | None = None
        self.synced = False
        self.gaps = 0

    def load_snapshot(self, snapshot: dict[str, Any]) -> None:
        self.bids = {Decimal(p): Decimal(q) for p, q in snapshot["bids"]}
        self.asks = {Decimal(p): Decimal(q) for p, q in snapshot["asks"]}
        self.update_id = snapshot["lastUpdateId"]
        self.snapshot_id = snapshot["lastUpdateId"]
        self.synced = False

    def apply(self, event: dict[str, Any]) -> str:
        """'stale', 'applied' or 'gap' (the caller must resync on a gap)."""
        assert self.update_id is not None
        first, final = event["U"], event["u"]
        if self.futures:
            if final < self.update_id:
                return "stale"
            if not self.synced:
                if not (first <= self.update_id <= final or event["pu"] == self.update_id):
                    self.gaps += 1
                    return "gap"
            elif event["pu"] != self.update_id:
                self.gaps += 1
                return "gap"
        else:
            if final <= self.update_id:
                return "stale"
            if first > self.update_id + 1:
                self.gaps += 1
                return "gap"
        for side, levels in ((self.bids, event["b"]), (self.asks, event["a"])):
            for price, quantity in levels:
                if Decimal(quantity) == 0:
                    side.pop(Decimal(price), None)
                else:
                    side[Decimal(price)] = Decimal(quantity)
        self.update_id = final
        self.synced = True
        return "applied"

    def levels(self, depth: int | None = None) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        bids = sorted(self.bids.items(), reverse=True)[:depth]
        asks = sorted(self.asks.items())[:depth]
        return bids, asks
