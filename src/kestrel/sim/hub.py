"""Fan-out of stream messages to WebSocket connections, with fault injection on the way.

Each message is serialised once: the raw payload bytes go to raw (`/ws`) connections as they are; the
combined form `{"stream":<name>,"data":<payload>}` is built once per subscribed name. A connection has
its own outbox and writer task, so one slow client never holds up the others; a client whose outbox
passes `max_outbox` frames is closed as a slow consumer (a real server would drop it too).

Subscriptions are indexed by *canonical* stream name. The synthetic market publishes under the names
clients subscribe to; a replay publishes under the recorded names, and `canonical` maps what a client
asks for onto them (a replayed `depth@0ms` serves `depth@100ms` subscribers), while the wrapper still
carries the name the client subscribed to.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import struct
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import WSCloseCode, WSMsgType, web

from kestrel.core.enums import Market
from kestrel.core.logs import get_logger
from kestrel.sim.faults import DROP, DUPLICATE, GAP, HOLD, MALFORMED, UNKNOWN_EVENT, FaultInjector
from kestrel.sim.stats import SimulatorStats
from kestrel.sim.streams import Route, StreamKind, delivered_on

if TYPE_CHECKING:
    from kestrel.sim.timeline import Timeline

log = get_logger(__name__)

Payload = bytes | Callable[[], bytes]
_connection_ids = itertools.count(1)
SLOW_CONSUMER = "slow consumer"
RATE_LIMIT = "rate limit"


class Connection:
    """One client WebSocket: its subscriptions, its outbox and the protocol state the server enforces."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        market: Market,
        route: Route | None,
        combined: bool,
        opened_s: float,
        max_outbox: int,
        transport: Any = None,  # the request's transport (uvloop's is not an asyncio.Transport subclass)
    ) -> None:
        self.id = next(_connection_ids)
        self.ws = ws
        self.transport = transport
        self.market = market
        self.route = route
        self.combined = combined
        self.opened_s = opened_s
        self.subscriptions: dict[str, None] = {}  # subscribed names in order (a dict as an ordered set)
        self.outbox: list[bytes] = []
        self.wake = asyncio.Event()
        self.max_outbox = max_outbox
        self.closed = False
        self.close_reason = ""
        self.stalled_until_s = 0.0
        self.incoming_s: deque[float] = deque()  # receive times of the last second's messages
        self.last_ping_s = opened_s
        self.ping_payload: bytes | None = None  # outstanding server ping
        self.ping_sent_s = 0.0
        self.frames_sent = 0

    def push(self, frame: bytes) -> None:
        if self.closed:
            return
        outbox = self.outbox
        outbox.append(frame)
        if len(outbox) == 1:
            self.wake.set()
        elif len(outbox) > self.max_outbox:
            self.request_close(SLOW_CONSUMER)

    def request_close(self, reason: str) -> None:
        """Mark for closing; the writer task does the close (we may be inside a publish loop)."""
        if not self.closed:
            self.closed = True
            self.close_reason = reason
            self.outbox.clear()
            self.wake.set()

    async def run_writer(self, timeline: Timeline) -> None:
        """Write queued frames, a whole batch per transport write (one system call instead of one per
        frame: at full-market rates the per-frame writes were most of the server's CPU)."""
        ws, transport = self.ws, self.transport
        while not self.closed:
            await self.wake.wait()
            self.wake.clear()
            stall = self.stalled_until_s - timeline.monotonic_s()
            if stall > 0 and not self.closed:
                await asyncio.sleep(stall)
                self.wake.set()
                continue
            batch, self.outbox = self.outbox, []
            if not batch:
                continue
            try:
                if transport is not None and not transport.is_closing():
                    transport.write(b"".join([_text_frame(frame) for frame in batch]))
                    while transport.get_write_buffer_size() > _HIGH_WATER_BYTES and not transport.is_closing():
                        await asyncio.sleep(0.001)  # the client reads slowly: let its outbox grow instead
                else:
                    for frame in batch:
                        await ws.send_frame(frame, WSMsgType.TEXT)
            except (ConnectionError, RuntimeError):
                self.request_close("send failed")
                break
            self.frames_sent += len(batch)
        if not ws.closed:
            code = WSCloseCode.POLICY_VIOLATION if self.close_reason in (RATE_LIMIT, SLOW_CONSUMER) else None
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.close(code=code or WSCloseCode.OK, message=self.close_reason.encode()[:120])


def _text_frame(payload: bytes) -> bytes:
    """An unmasked, uncompressed, final text frame (RFC 6455 §5.2), as a server sends it."""
    length = len(payload)
    if length < 126:
        return _SHORT_HEADER.pack(0x81, length) + payload
    if length < 65_536:
        return _MEDIUM_HEADER.pack(0x81, 126, length) + payload
    return _LONG_HEADER.pack(0x81, 127, length) + payload


_SHORT_HEADER = struct.Struct("!BB")
_MEDIUM_HEADER = struct.Struct("!BBH")
_LONG_HEADER = struct.Struct("!BBQ")
_HIGH_WATER_BYTES = 1 << 20


class StreamHub:
    """Subscriptions of every connection and the publish path (faults, delay, fan-out, counting)."""

    def __init__(self, stats: SimulatorStats, faults: FaultInjector, timeline: Timeline) -> None:
        self.stats = stats
        self.faults = faults
        self.timeline = timeline
        self.connections: dict[int, Connection] = {}
        # market → canonical stream → {connection: subscribed name}
        self._subscribers: dict[Market, dict[str, dict[Connection, str]]] = {market: {} for market in Market}
        self._held: dict[tuple[Market, str], tuple[str | None, StreamKind, bytes]] = {}
        self._withheld: set[tuple[Market, str]] = set()  # streams whose last message was withheld (gap)
        self._delayed: deque[tuple[float, Market, str, bytes]] = deque()
        self._last_due_s = 0.0
        self.canonical: Callable[[Market, str], str] = lambda market, name: name

    # ---- subscriptions ------------------------------------------------------------------------
    def add(self, connection: Connection) -> None:
        self.connections[connection.id] = connection

    def remove(self, connection: Connection) -> None:
        self.connections.pop(connection.id, None)
        for name in list(connection.subscriptions):
            self._unindex(connection, name)
        connection.subscriptions.clear()

    def subscribe(self, connection: Connection, name: str) -> None:
        if name in connection.subscriptions:
            return
        connection.subscriptions[name] = None
        if delivered_on(name, connection.market, connection.route):
            canonical = self.canonical(connection.market, name)
            self._subscribers[connection.market].setdefault(canonical, {})[connection] = name

    def unsubscribe(self, connection: Connection, name: str) -> None:
        if name in connection.subscriptions:
            del connection.subscriptions[name]
            self._unindex(connection, name)

    def _unindex(self, connection: Connection, name: str) -> None:
        canonical = self.canonical(connection.market, name)
        subscribers = self._subscribers[connection.market].get(canonical)
        if subscribers is not None:
            subscribers.pop(connection, None)
            if not subscribers:
                del self._subscribers[connection.market][canonical]
                self._withheld.discard((connection.market, canonical))

    def has_subscribers(self, market: Market, stream: str) -> bool:
        return stream in self._subscribers[market]

    def backlog(self) -> int:
        """The longest outbox of any connection (frames waiting to be written)."""
        return max((len(connection.outbox) for connection in self.connections.values()), default=0)

    def subscribed_streams(self, market: Market) -> set[str]:
        return set(self._subscribers[market])

    # ---- publishing ---------------------------------------------------------------------------
    def publish(
        self,
        market: Market,
        stream: str,
        kind: StreamKind,
        symbol: str | None,
        payload: Payload,
        on_demand: bool = False,
    ) -> None:
        """Offer one stream message; faults decide whether, how often and when it is delivered."""
        subscribed = stream in self._subscribers[market]
        action = self.faults.message_action(market.value, symbol, kind, subscribed, on_demand)
        if not subscribed:
            return
        symbol_counters = self.stats.symbol(f"{market.value}:{symbol or '*'}")
        stream_counters = self.stats.stream(kind.value)
        key = (market, stream)
        if action == GAP:
            if key not in self._withheld:  # a run of withheld diffs is one break in the sequence
                self._withheld.add(key)
                symbol_counters.gaps_injected += 1
                stream_counters.gaps_injected += 1
            return
        if action == DROP:
            symbol_counters.drops_injected += 1
            stream_counters.drops_injected += 1
            return
        if self._withheld:
            self._withheld.discard(key)
        data = payload if isinstance(payload, bytes) else payload()
        if self.faults.plan.has_extra_frames:
            extra = self.faults.extra_frame()
            if extra == MALFORMED:
                symbol_counters.malformed_injected += 1
                stream_counters.malformed_injected += 1
                self._send(market, stream, data[: max(1, len(data) // 2)])
            elif extra == UNKNOWN_EVENT:
                symbol_counters.unknown_events_injected += 1
                stream_counters.unknown_events_injected += 1
                unknown = {"e": "simulatorUnknownEvent", "E": self.timeline.server_ms(), "s": symbol}
                self._send(market, stream, orjson.dumps(unknown))
        if action == HOLD and key not in self._held:
            self._held[key] = (symbol, kind, data)
            return
        frames = self._send(market, stream, data)
        held = self._held.pop(key, None) if self._held else None
        if held is not None:
            frames += self._send(market, stream, held[2])
            symbol_counters.messages_sent += 1
            stream_counters.messages_sent += 1
            symbol_counters.reorders_injected += 1
            stream_counters.reorders_injected += 1
        if action == DUPLICATE:
            frames += self._send(market, stream, data)
            symbol_counters.duplicates_injected += 1
            stream_counters.duplicates_injected += 1
        symbol_counters.messages_sent += 1
        stream_counters.messages_sent += 1
        symbol_counters.frames_sent += frames
        stream_counters.frames_sent += frames

    def flush_held(self) -> None:
        """Deliver messages held for reordering whose successor never came (not counted as reorders)."""
        held, self._held = self._held, {}
        for (market, stream), (symbol, kind, data) in held.items():
            frames = self._send(market, stream, data)
            symbol_counters = self.stats.symbol(f"{market.value}:{symbol or '*'}")
            stream_counters = self.stats.stream(kind.value)
            symbol_counters.messages_sent += 1
            stream_counters.messages_sent += 1
            symbol_counters.frames_sent += frames
            stream_counters.frames_sent += frames

    def _send(self, market: Market, stream: str, data: bytes) -> int:
        """Deliver now, or queue for later under a delay fault; returns the frames offered."""
        if self.faults.plan.has_delay:
            due = max(self._last_due_s, self.timeline.monotonic_s() + self.faults.delay_s())
            self._last_due_s = due
            self._delayed.append((due, market, stream, data))
            return len(self._subscribers[market].get(stream) or ())
        return self._deliver(market, stream, data)

    def _deliver(self, market: Market, stream: str, data: bytes) -> int:
        subscribers = self._subscribers[market].get(stream)
        if not subscribers:
            return 0
        wrapped: dict[str, bytes] = {}
        for connection, name in subscribers.items():
            if connection.combined:
                frame = wrapped.get(name)
                if frame is None:
                    frame = wrapped[name] = b'{"stream":"' + name.encode() + b'","data":' + data + b"}"
                connection.push(frame)
            else:
                connection.push(data)
        return len(subscribers)

    def next_delayed_s(self) -> float | None:
        return self._delayed[0][0] if self._delayed else None

    def flush_delayed(self, now_s: float) -> None:
        delayed = self._delayed
        while delayed and delayed[0][0] <= now_s:
            _, market, stream, data = delayed.popleft()
            self._deliver(market, stream, data)

    def send_to_all(self, market: Market | None, frame: bytes) -> int:
        """A connection-level event (serverShutdown) to every connection of `market` (all if None)."""
        count = 0
        for connection in list(self.connections.values()):
            if market is None or connection.market is market:
                connection.push(frame)
                count += 1
        return count
