"""User data streams (spec §5.10, §6): one connection per market, kept alive until `stop()`.

- Futures: `POST /fapi/v1/listenKey`, then `<futures ws base>/private/ws/<listenKey>` (the legacy
  route-less `/ws/<listenKey>` is selectable); `PUT` keepalive every 30 min; a keepalive answered
  -1125 (unknown key) or a `listenKeyExpired` event ⇒ a new key and a new connection.
- Spot, current (`venue.spot_user_stream: ws_api`): the WebSocket API, `userDataStream.subscribe.signature`
  (params `apiKey`, `timestamp`, `signature` = HMAC of the params sorted by name); events come wrapped
  in `{"subscriptionId":..,"event":..}`; `eventStreamTerminated` ⇒ subscribe again on a new connection.
- Spot, legacy (`listen_key`): `POST /api/v3/userDataStream` and `<spot ws base>/ws/<listenKey>`.

Every connection is watched by WebSocket pings of our own (`heartbeat_s`): a user stream is silent for
hours when nothing trades, so silence cannot mean a dead link; an unanswered ping does. Reconnects use
the market-data streams' `Backoff` (0.5 s → 8 s with jitter). Each (re)connection is announced to
`on_connected`, which is where the venue re-reads open orders by REST: events sent while no connection
was up are lost by the exchange, their effect is not.

Why not `websocket.client.StreamConnection`: it recognises data frames by the combined-stream envelope
(`{"stream":...`), owns SUBSCRIBE pacing and make-before-break rotation for market shards, and treats
silence as death; a user stream has bare events, a URL that changes with each listenKey, a request /
answer handshake (WS API), and legitimate silence. The pieces that fit (backoff, frame timestamps from
the Clock, aiohttp's ping answering) are shared.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp
import orjson

from kestrel.binance.backoff import Backoff
from kestrel.binance.http.client import BinanceApiError, BinanceHttpClient
from kestrel.binance.http.endpoints import Endpoint
from kestrel.binance.http.signing import sign
from kestrel.binance.websocket.client import ConnectionState
from kestrel.core.clock import Clock
from kestrel.core.enums import Market
from kestrel.core.errors import ConfigurationError, KestrelError, TemporaryError
from kestrel.core.logs import get_logger

log = get_logger(__name__)

FrameHandler = Callable[[bytes, int], None]
ConnectedHandler = Callable[[Market], None]
INVALID_LISTEN_KEY = -1125
_AUTH_CODES = {-1022, -2014, -2015}  # bad signature / key format / key, IP or permission


@dataclass(frozen=True)
class UserStreamSettings:
    keepalive_interval_s: float = 1800.0  # listenKeys live 60 min; renew at half-life (spec §5.10)
    keepalive_retry_s: float = 60.0  # a keepalive that failed transiently is retried this soon
    heartbeat_s: float = 30.0  # our ping interval; no pong within half of it ⇒ the link is dead
    connect_timeout_s: float = 10.0
    subscribe_timeout_s: float = 10.0  # WS API subscription answer
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 8.0
    backoff_jitter: float = 0.2
    stable_after_s: float = 10.0  # connected this long resets the backoff
    futures_route: Literal["private", "legacy"] = "private"


@dataclass
class UserStreamCounters:
    connects: int = 0
    reconnects: int = 0
    failed_connects: int = 0
    listen_keys_created: int = 0
    keepalives: int = 0
    expiries: int = 0  # listenKeyExpired / eventStreamTerminated / -1125 on keepalive
    frames: int = 0
    last_frame_ns: int = 0
    last_connect_ns: int = 0
    errors: list[str] = field(default_factory=list)


class _Restart(Exception):
    """Leave the read loop and reconnect now (reason in args[0])."""


class UserStream(ABC):
    """One market's user data connection. `run()` until `stop()`; frames go to `on_frame`."""

    def __init__(
        self,
        market: Market,
        clock: Clock,
        on_frame: FrameHandler,
        on_connected: ConnectedHandler | None = None,
        settings: UserStreamSettings | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.market = market
        self.clock = clock
        self.on_frame = on_frame
        self.on_connected = on_connected
        self.settings = settings or UserStreamSettings()
        self.backoff = backoff or Backoff(
            self.settings.backoff_initial_s, self.settings.backoff_max_s, self.settings.backoff_jitter
        )
        self.counters = UserStreamCounters()
        self.state = ConnectionState.IDLE
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._stopping = False
        self._restart_reason: str | None = None
        self._wakeup = asyncio.Event()

    @property
    def connected(self) -> bool:
        return self.state is ConnectionState.STREAMING

    def stop(self) -> None:
        self._stopping = True
        self._wakeup.set()
        self._close_soon()

    def restart(self, reason: str) -> None:
        """Drop the connection and reconnect at once (the stream was ended by the exchange)."""
        self._restart_reason = reason
        self._wakeup.set()
        self._close_soon()

    def _close_soon(self) -> None:
        if self._ws is not None and not self._ws.closed:
            asyncio.get_running_loop().create_task(self._ws.close())

    async def run(self) -> None:
        self._session = aiohttp.ClientSession()
        try:
            await self._run()
        finally:
            self.state = ConnectionState.STOPPED
            if self._ws is not None:
                with contextlib.suppress(Exception):
                    await self._ws.close()
            await self._on_stop()
            await self._session.close()

    async def _run(self) -> None:
        while not self._stopping:
            self.state = ConnectionState.CONNECTING
            self._restart_reason = None
            try:
                ws = await self._connect()
            except ConfigurationError:
                raise
            except (aiohttp.ClientError, OSError, TimeoutError, KestrelError) as exc:
                self._failed(f"{exc.__class__.__name__}: {exc}")
                await self._sleep(self.backoff.next_delay())
                continue
            connected_ns = self.clock.timestamp_ns()
            self.counters.connects += 1
            self.counters.last_connect_ns = connected_ns
            self.state = ConnectionState.STREAMING
            if self.on_connected is not None:
                self.on_connected(self.market)
            reason = await self._read(ws)
            self._ws = None
            with contextlib.suppress(Exception):
                await ws.close()
            if self._stopping:
                break
            self.counters.reconnects += 1
            self.state = ConnectionState.BACKOFF
            stable = self.clock.timestamp_ns() - connected_ns >= self.settings.stable_after_s * 1e9
            if stable:
                self.backoff.reset()
            log.info("user data stream lost; reconnecting", market=self.market.value, reason=reason)
            if self._restart_reason is None:
                await self._sleep(self.backoff.next_delay())

    async def _connect(self) -> aiohttp.ClientWebSocketResponse:
        url = await self._prepare()
        assert self._session is not None
        ws = await asyncio.wait_for(
            self._session.ws_connect(
                url,
                autoping=True,  # answer the server's pings with its payload (spec §1.4)
                heartbeat=self.settings.heartbeat_s,
                max_msg_size=16 * 1024 * 1024,
            ),
            self.settings.connect_timeout_s,
        )
        self._ws = ws
        try:
            await self._on_open(ws)
        except BaseException:
            self._ws = None
            with contextlib.suppress(Exception):
                await ws.close()
            raise
        return ws

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> str:
        while not self._stopping:
            message = await ws.receive()
            kind = message.type
            if kind is aiohttp.WSMsgType.TEXT or kind is aiohttp.WSMsgType.BINARY:
                data = message.data if isinstance(message.data, bytes) else message.data.encode()
                ts_init = self.clock.timestamp_ns()
                self.counters.frames += 1
                self.counters.last_frame_ns = ts_init
                try:
                    self.on_frame(data, ts_init)
                except _Restart as restart:
                    return str(restart.args[0])
                continue
            if kind in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                return self._restart_reason or f"closed ({ws.close_code})"
            if kind is aiohttp.WSMsgType.ERROR:
                return f"socket error: {ws.exception()}"
        return "stopped"

    def _failed(self, reason: str) -> None:
        self.counters.failed_connects += 1
        self.counters.errors.append(reason)
        del self.counters.errors[:-20]
        self.state = ConnectionState.BACKOFF
        log.warning("user data stream connect failed", market=self.market.value, reason=reason)

    async def _sleep(self, seconds: float) -> None:
        self._wakeup.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), seconds)

    @abstractmethod
    async def _prepare(self) -> str:
        """The URL to connect to (creating a listenKey first where needed)."""

    async def _on_open(self, ws: aiohttp.ClientWebSocketResponse) -> None:  # noqa: B027 - optional hook
        """Handshake after the socket opened (WS API subscription)."""

    async def _on_stop(self) -> None:  # noqa: B027 - optional hook
        """Release what the stream holds (close the listenKey)."""


class ListenKeyStream(UserStream):
    """Futures (`/private/ws/<key>` or legacy `/ws/<key>`) and legacy spot (`/ws/<key>`)."""

    def __init__(
        self,
        market: Market,
        clock: Clock,
        http: BinanceHttpClient,
        endpoints: dict[str, Endpoint],
        ws_base_url: str,
        on_frame: FrameHandler,
        on_connected: ConnectedHandler | None = None,
        settings: UserStreamSettings | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__(market, clock, on_frame, on_connected, settings, backoff)
        self.http = http
        self.endpoints = endpoints
        self.ws_base_url = ws_base_url.rstrip("/")
        self.listen_key: str | None = None
        self._keepalive: asyncio.Task[None] | None = None

    def url_for(self, listen_key: str) -> str:
        if self.market is Market.FUTURES and self.settings.futures_route == "private":
            return f"{self.ws_base_url}/private/ws/{listen_key}"
        return f"{self.ws_base_url}/ws/{listen_key}"

    def expire(self, reason: str) -> None:
        """The key is dead (listenKeyExpired / -1125): a new one is created on the reconnect."""
        self.counters.expiries += 1
        self.listen_key = None
        self.restart(reason)

    async def _prepare(self) -> str:
        if self.listen_key is None:
            body = await self.http.call(self.endpoints["listen_key_create"])
            key = body.get("listenKey") if isinstance(body, dict) else None
            if not isinstance(key, str) or not key:
                raise TemporaryError(f"listenKey create: unexpected answer {str(body)[:120]!r}")
            self.listen_key = key
            self.counters.listen_keys_created += 1
        if self._keepalive is None or self._keepalive.done():
            self._keepalive = asyncio.get_running_loop().create_task(self._keep_alive())
        return self.url_for(self.listen_key)

    async def _keep_alive(self) -> None:
        delay = self.settings.keepalive_interval_s
        while not self._stopping:
            await self._sleep_keepalive(delay)
            if self._stopping or self.listen_key is None:
                delay = self.settings.keepalive_interval_s
                continue
            params = {"listenKey": self.listen_key} if self.market is Market.SPOT else None
            try:
                await self.http.call(self.endpoints["listen_key_keepalive"], params)
                self.counters.keepalives += 1
                delay = self.settings.keepalive_interval_s
            except BinanceApiError as error:
                if error.code == INVALID_LISTEN_KEY:
                    log.warning("listenKey unknown to the exchange; creating a new one", market=self.market.value)
                    self.expire("listenKey invalid (-1125)")
                    delay = self.settings.keepalive_interval_s
                else:
                    log.error("listenKey keepalive refused", market=self.market.value, code=error.code)
                    delay = self.settings.keepalive_retry_s
            except TemporaryError as error:
                log.warning("listenKey keepalive failed; retrying", market=self.market.value, error=str(error))
                delay = self.settings.keepalive_retry_s

    async def _sleep_keepalive(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def _on_stop(self) -> None:
        if self._keepalive is not None:
            self._keepalive.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._keepalive
        if self.listen_key is not None:
            params = {"listenKey": self.listen_key} if self.market is Market.SPOT else None
            # best effort, and never held up by the request budget: an unclosed key expires by itself
            with contextlib.suppress(KestrelError, aiohttp.ClientError, OSError, TimeoutError):
                await asyncio.wait_for(self.http.call(self.endpoints["listen_key_close"], params), 2.0)
            self.listen_key = None


class WsApiUserStream(UserStream):
    """Spot user data through the WebSocket API (`userDataStream.subscribe.signature`)."""

    def __init__(
        self,
        clock: Clock,
        ws_api_url: str,
        api_key: str,
        api_secret: str,
        on_frame: FrameHandler,
        on_connected: ConnectedHandler | None = None,
        settings: UserStreamSettings | None = None,
        backoff: Backoff | None = None,
        server_offset_ms: Callable[[], int] | None = None,
    ) -> None:
        super().__init__(Market.SPOT, clock, on_frame, on_connected, settings, backoff)
        self.ws_api_url = ws_api_url
        self._api_key = api_key
        self._api_secret = api_secret
        self._ids = itertools.count(1)
        self._server_offset_ms = server_offset_ms or (lambda: 0)
        self.subscription_id: int | None = None

    def subscribe_request(self, request_id: int) -> dict[str, Any]:
        """The signed subscription request (WS API signing: params sorted by name, spec §4.3)."""
        params: dict[str, object] = {
            "apiKey": self._api_key,
            "timestamp": self.clock.timestamp_ms() + self._server_offset_ms(),
        }
        payload = "&".join(f"{key}={params[key]}" for key in sorted(params))
        params["signature"] = sign(self._api_secret, payload)
        return {"id": request_id, "method": "userDataStream.subscribe.signature", "params": params}

    def terminated(self, reason: str) -> None:
        self.counters.expiries += 1
        self.subscription_id = None
        self.restart(reason)

    async def _prepare(self) -> str:
        return self.ws_api_url

    async def _on_open(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        request_id = next(self._ids)
        await ws.send_str(orjson.dumps(self.subscribe_request(request_id)).decode())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.subscribe_timeout_s
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TemporaryError("userDataStream.subscribe: no answer")
            message = await ws.receive(timeout=remaining)
            if message.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                raise TemporaryError(f"userDataStream.subscribe: connection ended ({message.type.name})")
            try:
                body = orjson.loads(message.data)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(body, dict) or body.get("id") != request_id:
                continue  # not our answer (an event racing it cannot exist before the subscription)
            status = body.get("status")
            if status == 200:
                result = body.get("result") or {}
                self.subscription_id = int(result.get("subscriptionId", 0))
                return
            error = body.get("error") or {}
            code = int(error.get("code", 0))
            message_text = f"userDataStream.subscribe refused: {code} {error.get('msg', '')} (status {status})"
            if code in _AUTH_CODES:
                log.error(message_text, market="spot")
            raise TemporaryError(message_text)
