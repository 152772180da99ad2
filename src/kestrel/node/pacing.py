"""The node's side of the simulator's lockstep mode (`kestrel.sim.lockstep`): a deterministic test mode
in which a paper run over real sockets matches a backtest order for order, fill for fill.

Injected only in that mode (`TradingNode(..., clock=LockstepClock(start), pacer=LockstepPacer(url,
clock))`); a node without a pacer behaves exactly as before. The clock stands still between steps: the
simulator says when time moves. At each step the pacer waits until the node has processed everything
the simulator sent for it (market frames, user-data frames, the REST answers it released, a depth
snapshot in flight), then moves the clock to the step's time (the strategy's timers fire and its
orders go out), then acknowledges with the number of order requests sent so far and the next timer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson

from kestrel.binance.schemas.trading import WireRequest
from kestrel.core.clock import SimClock
from kestrel.core.errors import KestrelError
from kestrel.core.logs import get_logger

if TYPE_CHECKING:
    from kestrel.node.kernel import TradingNode

log = get_logger(__name__)
RestCall = Callable[[WireRequest, int | None], Coroutine[Any, Any, Any]]
ORDER_ENDPOINTS = frozenset({"new_order", "cancel_order"})  # what the simulator holds in lockstep
_TURNS = 8  # event-loop turns a command task needs to write its request (chained ones included)


class LockstepError(KestrelError):
    """The lockstep run cannot go on (the simulator or the node stopped answering)."""


class LockstepClock(SimClock):
    """A clock moved only by the lockstep pacer (never the wall clock): timers fire at their own time,
    in order, as `SimClock.advance_to` fires them in a backtest; a step stamped before the clock's time
    (an event the pacer already passed) leaves it where it is."""

    def advance_to(self, ts_ns: int) -> int:
        return super().advance_to(max(ts_ns, self.timestamp_ns()))


class LockstepPacer:
    """Connects to the simulator's control socket and paces the node, step by step."""

    def __init__(self, control_url: str, clock: LockstepClock, timeout_s: float = 30.0) -> None:
        self.control_url = control_url
        self.clock = clock
        self.timeout_s = timeout_s
        self.steps = 0
        self.error: str | None = None
        self._task: asyncio.Task[None] | None = None
        self.requests_sent = 0  # order requests (new, cancel) written by the venue
        self.answers_taken = 0  # their answers, processed
        self._sent_order: list[list[str]] = []  # this step's requests, in the order they were written

    def start(self, node: TradingNode) -> None:
        """Begin pacing `node` (called once the node has started: its feed and venue are connected)."""
        if node.binance is None:
            raise LockstepError("lockstep pacing needs the Binance venue")
        for rest in node.binance.rest.values():
            rest.call = self._counted(rest.call)  # type: ignore[method-assign,assignment]  # this node's instance only
        self._task = asyncio.get_running_loop().create_task(self._run(node), name="lockstep-pacer")

    def _counted(self, call: RestCall) -> RestCall:
        """Count the order requests the venue sends and the answers it has taken in. When `call`
        returns, the venue's command applies the answer before it next yields, so a count reached
        means the answers are processed."""

        async def counted(request: WireRequest, weight: int | None = None) -> Any:
            if request.endpoint not in ORDER_ENDPOINTS:
                return await call(request, weight)
            self.requests_sent += 1
            client_id = request.params.get("newClientOrderId") or request.params.get("origClientOrderId")
            self._sent_order.append([request.endpoint, str(client_id)])
            try:
                return await call(request, weight)
            finally:
                self.answers_taken += 1

        return counted

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # ---- what the node has processed -------------------------------------------------------------
    @staticmethod
    def _user_frames(node: TradingNode) -> int:
        venue = node.binance
        return sum(stream.counters.frames for stream in venue.streams.values()) if venue is not None else 0

    @staticmethod
    def _snapshot_in_flight(node: TradingNode) -> bool:
        return any(
            node.feed.sequencer.symbol(market, symbol).book.snapshot_pending for market, symbol in node.instruments
        )

    async def _settle(self, node: TradingNode, step: dict[str, Any], market_base: int, user_base: int) -> None:
        market_frames, user_frames = int(step["market_frames"]), int(step["user_frames"])
        answers, snapshots = int(step["answers"]), int(step["snapshots"])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        spins = 0
        while (
            node.feed.messages - market_base < market_frames
            or self._user_frames(node) - user_base < user_frames
            or self.answers_taken < answers
            or (self._snapshot_in_flight(node) and node.feed.snapshots_requested <= snapshots)
        ):
            if loop.time() > deadline:
                raise LockstepError(
                    f"step {step['ts_ns']}: the node did not catch up (market {node.feed.messages - market_base}/"
                    f"{market_frames}, user {self._user_frames(node) - user_base}/{user_frames}, "
                    f"answers {self.answers_taken}/{answers})"
                )
            spins += 1
            await asyncio.sleep(0 if spins < 50 else 0.001)  # socket reads first, then a short wait
        await self._let_commands_out()

    @staticmethod
    async def _let_commands_out() -> None:
        """Command tasks just created (or woken by an answer) write their request on their first turns."""
        for _ in range(_TURNS):
            await asyncio.sleep(0)

    async def _run(self, node: TradingNode) -> None:
        try:
            async with aiohttp.ClientSession() as session, session.ws_connect(self.control_url) as ws:
                market_base, user_base = node.feed.messages, self._user_frames(node)
                await ws.send_bytes(orjson.dumps({"op": "hello"}))
                while True:
                    message = await ws.receive(timeout=self.timeout_s)
                    if message.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                        raise LockstepError("the simulator closed the lockstep control socket")
                    data = orjson.loads(message.data)
                    operation = data.get("op")
                    if operation == "hello":
                        continue
                    if operation == "end":  # the last answers: processed before the node stops
                        await self._settle(node, data, market_base, user_base)
                        break
                    if operation != "step":
                        raise LockstepError(f"lockstep: {data.get('msg', data)}")
                    await self._settle(node, data, market_base, user_base)
                    self.clock.advance_to(int(data["ts_ns"]))
                    await self._let_commands_out()
                    self.steps += 1
                    ack = {
                        "op": "ack",
                        "ts_ns": data["ts_ns"],
                        "commands": self.requests_sent,
                        "next_timer_ns": self.clock.next_timer_ns(),
                        "order": self._sent_order,
                    }
                    self._sent_order = []
                    await ws.send_bytes(orjson.dumps(ack))
        except (LockstepError, aiohttp.ClientError, TimeoutError) as error:
            self.error = str(error) or type(error).__name__
            log.error("lockstep pacing failed", error=self.error)
        finally:
            node.request_stop()
