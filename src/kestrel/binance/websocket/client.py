"""One combined-stream WebSocket connection per shard, kept alive for ever (spec §1, R-MD-4).

- Connect to ``<base>/stream?streams=...`` (futures: ``<base>/<route>/stream?...``); streams that do not
  fit the URL are added with SUBSCRIBE messages of up to `subscribe_batch` streams, paced at
  `subscribe_messages_per_s` (below the exchange's cap of 5/s spot, 10/s futures incoming messages).
- Pings are answered by aiohttp with a pong echoing the payload; no unsolicited pings are sent (they
  would count against the message cap).
- Heartbeat watchdog: no frame for `heartbeat_timeout_s` ⇒ reconnect.
- Reconnect with exponential backoff (0.5 s → 8 s, jitter); after `reconnect_alert_after` failures in
  a row an alert is logged. `serverShutdown` ⇒ reconnect without waiting.
- Proactive rotation before the 24 h cut: at `connection_lifetime_s − rotate_before_cut_s` a second
  connection is opened and subscribed; both are read until `rotation_overlap_s` after the new one's
  first data frame (the old socket may still hold frames sent before the new subscription took effect,
  and one stream of the new connection streaming does not mean all do), then the old one is closed
  (make before break: nothing is missed; the overlap's duplicates are recognised by the sequencer and,
  while `rotating` is set, counted apart).
- Every data frame goes to `on_frame(frame, ts_init)`, `ts_init` read from the Clock the moment the frame
  is taken off the socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

import aiohttp
import msgspec

from kestrel.binance.backoff import Backoff
from kestrel.core.clock import Clock
from kestrel.core.events import NANOS_PER_MILLI, NANOS_PER_SECOND
from kestrel.core.logs import get_logger

log = get_logger(__name__)

FrameHandler = Callable[[bytes, int], None]
WebSocket = aiohttp.ClientWebSocketResponse[Literal[False]]  # decode_text=False: text frames as bytes
_DATA_PREFIX = b'{"stream":"'
_SHUTDOWN_PREFIX = b'{"stream":"!serverShutdown"'
_REPLY_DECODER = msgspec.json.Decoder(dict[str, Any])


class ConnectionState(StrEnum):
    IDLE = "idle"
    CONNECTING = "connecting"
    SUBSCRIBED = "subscribed"  # connected and subscribed, no data frame yet
    STREAMING = "streaming"
    BACKOFF = "backoff"
    STOPPED = "stopped"


_FOREVER_NS = 2**62


@dataclass
class _OverlapReads:
    """The two outstanding reads of a rotation (new connection, old connection)."""

    new: asyncio.Future[Any]
    old: asyncio.Future[Any] | None
    switched: bool = False


@dataclass
class StreamSettings:
    heartbeat_timeout_s: float = 10.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 8.0
    backoff_jitter: float = 0.2
    subscribe_messages_per_s: float = 4.0
    subscribe_batch: int = 100
    url_max_chars: int = 4000  # streams beyond this go by SUBSCRIBE
    connection_lifetime_s: float = 86_400.0
    rotate_before_cut_s: float = 1_800.0
    connect_timeout_s: float = 10.0
    stable_after_s: float = 10.0  # streaming this long resets the backoff
    reconnect_alert_after: int = 3
    rotation_overlap_s: float = 0.5  # both connections are read this long after the new one streams
    rotation_overlap_grace_s: float = 1.0  # `rotating` stays set this long after the switch


@dataclass
class ConnectionCounters:
    connects: int = 0
    reconnects: int = 0
    failed_connects: int = 0
    consecutive_failures: int = 0
    watchdog_timeouts: int = 0
    server_closes: int = 0
    shutdown_notices: int = 0
    rotations: int = 0
    frames: int = 0
    control_replies: int = 0
    control_errors: int = 0
    subscribe_messages: int = 0
    alerts: int = 0
    reconnect_ms: list[float] = field(default_factory=list)  # disconnect → first data frame again


class _Restart(Exception):
    """Internal: leave the read loop and reconnect (reason in args[0])."""


class StreamConnection:
    """Keeps one shard's streams flowing into `on_frame` until `stop()`."""

    def __init__(
        self,
        name: str,
        endpoint: str,
        streams: Sequence[str],
        clock: Clock,
        on_frame: FrameHandler,
        settings: StreamSettings | None = None,
        backoff: Backoff | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.name = name
        self.endpoint = endpoint.rstrip("/")  # e.g. ws://host:port/public/stream
        self.streams = list(streams)
        self.clock = clock
        self.on_frame = on_frame
        self.settings = settings or StreamSettings()
        self.backoff = backoff or Backoff(
            self.settings.backoff_initial_s, self.settings.backoff_max_s, self.settings.backoff_jitter
        )
        self.counters = ConnectionCounters()
        self.state = ConnectionState.IDLE
        self.rotating = False
        self._session = session
        self._own_session = session is None
        self._stopping = False
        self._ids = itertools.count(1)
        self._disconnected_ns: int | None = None
        self._streaming_since_ns: int | None = None
        self._rotating_until_ns = 0
        self._connected_ns = 0
        self._last_frame_ns = 0
        self._watchdog_fired = False
        self._ws: WebSocket | None = None
        self._subscriber: asyncio.Task[None] | None = None
        self._wakeup = asyncio.Event()

    # ---- public ---------------------------------------------------------------------------------
    @property
    def streaming(self) -> bool:
        return self.state is ConnectionState.STREAMING

    def stop(self) -> None:
        self._stopping = True
        self._wakeup.set()
        if self._ws is not None and not self._ws.closed:
            asyncio.get_running_loop().create_task(self._ws.close())

    def request_reconnect(self) -> None:
        """Drop the current connection and reconnect (e.g. after a serverShutdown notice)."""
        if self._ws is not None and not self._ws.closed:
            asyncio.get_running_loop().create_task(self._ws.close())

    async def run(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            while not self._stopping:
                try:
                    ws = await self._open()
                except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                    self._on_failure(f"connect failed: {exc.__class__.__name__}: {exc}")
                    await self._wait_backoff()
                    continue
                reason = await self._read(ws)
                await self._close_current()
                if self._stopping:
                    break
                self._on_disconnect(reason)
                if reason != "shutdown notice":
                    await self._wait_backoff()
        finally:
            self.state = ConnectionState.STOPPED
            await self._close_current()
            if self._own_session and self._session is not None:
                await self._session.close()

    # ---- connect / subscribe --------------------------------------------------------------------
    def _url(self) -> tuple[str, list[str]]:
        """The connect URL with as many streams as fit; the rest to SUBSCRIBE."""
        in_url: list[str] = []
        length = len(self.endpoint) + len("?streams=")
        for stream in self.streams:
            if length + len(stream) + 1 > self.settings.url_max_chars:
                break
            in_url.append(stream)
            length += len(stream) + 1
        rest = self.streams[len(in_url) :]
        if not in_url:
            return self.endpoint, rest
        return f"{self.endpoint}?streams={'/'.join(in_url)}", rest

    async def _open(self) -> WebSocket:
        self.state = ConnectionState.CONNECTING
        url, rest = self._url()
        assert self._session is not None
        ws = await self._session.ws_connect(
            url,
            autoping=True,  # answer pings with a pong carrying the same payload (spec §1.4)
            heartbeat=None,
            decode_text=False,  # text frames as bytes: the decoder slices the stream name off the bytes
            timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=2.0),
            max_msg_size=16 * 1024 * 1024,
        )
        self.counters.connects += 1
        self.state = ConnectionState.SUBSCRIBED
        self._ws = ws
        self._connected_ns = self.clock.timestamp_ns()
        self._subscriber = asyncio.create_task(self._subscribe(ws, rest)) if rest else None
        return ws

    async def _subscribe(self, ws: WebSocket, streams: list[str]) -> None:
        interval = 1.0 / self.settings.subscribe_messages_per_s
        for start in range(0, len(streams), self.settings.subscribe_batch):
            if ws.closed:
                return
            batch = streams[start : start + self.settings.subscribe_batch]
            request = {"method": "SUBSCRIBE", "params": batch, "id": next(self._ids)}
            with contextlib.suppress(ConnectionError, aiohttp.ClientError):
                await ws.send_str(msgspec.json.encode(request).decode())
            self.counters.subscribe_messages += 1
            await asyncio.sleep(interval)  # pacing: never above the exchange's message cap

    async def _close_current(self) -> None:
        if self._subscriber is not None:
            self._subscriber.cancel()
            self._subscriber = None
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
            self._ws = None

    # ---- reading --------------------------------------------------------------------------------
    def _rotation_due_ns(self) -> int:
        settings = self.settings
        return self._connected_ns + int(
            max(settings.connection_lifetime_s - settings.rotate_before_cut_s, 1.0) * NANOS_PER_SECOND
        )

    async def _read(self, ws: WebSocket) -> str:
        """Read until the connection must be replaced; returns why.

        No per-receive timeout: arming and cancelling a timer for every frame costs more than decoding
        it. A watchdog task checks the time of the last frame instead.
        """
        self._last_frame_ns = self.clock.timestamp_ns()
        self._watchdog_fired = False
        watchdog = asyncio.create_task(self._watch())
        try:
            while not self._stopping:
                self._handle(await ws.receive())
                if self._last_frame_ns >= self._rotation_due_ns():
                    ws = await self._rotate(ws)
        except _Restart as restart:
            return "heartbeat timeout" if self._watchdog_fired else str(restart.args[0])
        finally:
            watchdog.cancel()
        return "stopped"

    async def _watch(self) -> None:
        """Close the current connection when no frame came for `heartbeat_timeout_s`."""
        timeout_ns = int(self.settings.heartbeat_timeout_s * NANOS_PER_SECOND)
        period = self.settings.heartbeat_timeout_s / 4
        while True:
            await asyncio.sleep(period)
            if self.clock.timestamp_ns() - self._last_frame_ns > timeout_ns:
                self._watchdog_fired = True
                self.counters.watchdog_timeouts += 1
                if self._ws is not None:
                    await self._ws.close()
                return

    def _handle(self, message: Any) -> None:  # aiohttp.WSMessage (its typing varies with decode_text)
        kind = message.type
        if kind is aiohttp.WSMsgType.TEXT or kind is aiohttp.WSMsgType.BINARY:
            data = message.data
            ts_init = self._last_frame_ns = self.clock.timestamp_ns()
            if data.startswith(_DATA_PREFIX):
                if data.startswith(_SHUTDOWN_PREFIX):
                    self.counters.shutdown_notices += 1
                    raise _Restart("shutdown notice")
                if self.state is not ConnectionState.STREAMING:
                    self._on_streaming(ts_init)
                self.counters.frames += 1
                self.on_frame(data, ts_init)
            else:
                self._control(data)
            return
        if kind in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
            if not self._watchdog_fired:
                self.counters.server_closes += 1
            raise _Restart(f"closed by server ({message.data})" if message.data else "closed")
        if kind is aiohttp.WSMsgType.ERROR:
            raise _Restart(f"socket error: {message.data}")

    def _control(self, data: bytes) -> None:
        try:
            reply = _REPLY_DECODER.decode(data)
        except msgspec.DecodeError:
            self.counters.control_errors += 1
            log.warning("unreadable non-stream frame", shard=self.name, frame=data[:120])
            return
        if reply.get("e") == "serverShutdown":
            self.counters.shutdown_notices += 1
            raise _Restart("shutdown notice")
        self.counters.control_replies += 1
        if "code" in reply:
            self.counters.control_errors += 1
            log.warning("control message refused", shard=self.name, code=reply.get("code"), msg=reply.get("msg"))

    def _on_streaming(self, ts_init: int) -> None:
        self.state = ConnectionState.STREAMING
        self._streaming_since_ns = ts_init
        self.counters.consecutive_failures = 0
        if self._disconnected_ns is not None:
            self.counters.reconnect_ms.append((ts_init - self._disconnected_ns) / NANOS_PER_MILLI)
            del self.counters.reconnect_ms[:-1000]
            self._disconnected_ns = None

    # ---- rotation -------------------------------------------------------------------------------
    async def _rotate(self, old: WebSocket) -> WebSocket:
        """Open and subscribe a replacement; read both until the overlap after the new one streams."""
        self.rotating = True
        self._rotating_until_ns = _FOREVER_NS  # a previous rotation's pending end must not clear this one
        old_subscriber = self._subscriber
        try:
            new = await self._open()
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.warning("rotation connect failed; keeping the old connection", shard=self.name, error=str(exc))
            self._connected_ns += int(30 * NANOS_PER_SECOND)  # try again in 30 s
            self._ws, self._subscriber = old, old_subscriber
            self.rotating, self._rotating_until_ns = False, 0
            return old
        self.counters.rotations += 1
        self._ws = old  # until the switch, the old one is current
        reads = _OverlapReads(asyncio.ensure_future(new.receive()), asyncio.ensure_future(old.receive()))
        try:
            await self._read_both(old, new, reads)
        finally:
            if reads.old is not None:
                reads.old.cancel()
            if old_subscriber is not None:
                old_subscriber.cancel()
            if not reads.switched:  # the rotation failed: the caller reconnects from scratch
                reads.new.cancel()
                self.rotating, self._rotating_until_ns = False, 0
                with contextlib.suppress(Exception):
                    await new.close()
        await self._settle_pending_receive(reads.new)
        with contextlib.suppress(Exception):
            await old.close()
        self._ws = new
        grace_s = self.settings.rotation_overlap_grace_s
        self._rotating_until_ns = self.clock.timestamp_ns() + int(grace_s * NANOS_PER_SECOND)
        asyncio.get_running_loop().call_later(grace_s, self._end_rotation)
        log.info("connection rotated before the 24 h cut", shard=self.name)
        return new

    async def _read_both(self, old: WebSocket, new: WebSocket, reads: _OverlapReads) -> None:
        loop = asyncio.get_running_loop()
        overlap_ends = 0.0
        while True:
            timeout = self.settings.heartbeat_timeout_s
            if reads.switched:
                remaining = overlap_ends - loop.time()
                if remaining <= 0 or reads.old is None:
                    return
                timeout = min(timeout, remaining)
            pending = {reads.new} | ({reads.old} if reads.old is not None else set())
            done, _ = await asyncio.wait(pending, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if not done:
                if reads.switched:
                    return  # the overlap is over (or the old connection has gone quiet)
                raise _Restart("heartbeat timeout during rotation")
            if reads.old is not None and reads.old in done:
                try:
                    self._handle(reads.old.result())
                    reads.old = asyncio.ensure_future(old.receive())
                except _Restart:
                    reads.old = None  # the old one ended first: just wait for the new one
            if reads.new in done:
                message = reads.new.result()
                is_data = message.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY)
                data = message.data if is_data else b""
                self._handle(message)
                if not reads.switched and isinstance(data, bytes) and data.startswith(_DATA_PREFIX):
                    reads.switched = True  # the new connection streams: drain the old one, then switch
                    overlap_ends = loop.time() + self.settings.rotation_overlap_s
                reads.new = asyncio.ensure_future(new.receive())

    async def _settle_pending_receive(self, waiting: asyncio.Future[Any]) -> None:
        """The new connection's outstanding read is completed, not cancelled: aiohttp marks a socket
        whose `receive()` was cancelled as abnormally closed. A streaming connection answers within
        the heartbeat; silence that long is the watchdog's case anyway."""
        done, _ = await asyncio.wait({waiting}, timeout=self.settings.heartbeat_timeout_s)
        if not done:
            waiting.cancel()
            raise _Restart("heartbeat timeout after rotation")
        self._handle(waiting.result())

    def _end_rotation(self) -> None:
        if self.clock.timestamp_ns() >= self._rotating_until_ns:
            self.rotating = False

    # ---- failures -------------------------------------------------------------------------------
    def _on_disconnect(self, reason: str) -> None:
        now = self.clock.timestamp_ns()
        stable = (
            self._streaming_since_ns is not None
            and now - self._streaming_since_ns >= self.settings.stable_after_s * NANOS_PER_SECOND
        )
        if stable:
            self.backoff.reset()
        if self._disconnected_ns is None:
            self._disconnected_ns = now
        self._streaming_since_ns = None
        self.counters.reconnects += 1
        self.state = ConnectionState.BACKOFF
        log.info("stream connection lost; reconnecting", shard=self.name, reason=reason)

    def _on_failure(self, reason: str) -> None:
        counters = self.counters
        counters.failed_connects += 1
        counters.consecutive_failures += 1
        if self._disconnected_ns is None:
            self._disconnected_ns = self.clock.timestamp_ns()
        self.state = ConnectionState.BACKOFF
        if counters.consecutive_failures == self.settings.reconnect_alert_after:
            counters.alerts += 1
            log.error(
                "ALERT: stream connection keeps failing",
                shard=self.name,
                failures=counters.consecutive_failures,
                reason=reason,
            )
        else:
            log.info("stream connect failed", shard=self.name, reason=reason)

    async def _wait_backoff(self) -> None:
        delay = self.backoff.next_delay()
        self._wakeup.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), delay)
