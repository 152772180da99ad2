"""Lockstep replay: the simulator and one client move through a recording one moment at a time.

A deterministic test mode (off by default, never for real trading) in which a paper node trading the
simulator over real sockets sends the same orders and gets the same fills as a backtest of the same
strategy on the same recording. Wall time and network delays stop mattering because time is no longer
the wall clock's: the simulator is the one clock of the run and waits for the client at every step.

What is shared with the backtest, not copied: the event table (`LockstepPlan.table`, built by the
backtest's own preparation), the matching engine driven by `run_until` on that table (so the exchange
side sees exactly the backtest's rows at exchange time), and `SimVenue`, which stamps every command at
arrival = send time + entry latency and every answer at delivery = exchange time + response latency,
FIFO. The only difference is who reacts: `SimVenue`'s deliveries become the wire's answers (the held
REST response of the command, `ORDER_TRADE_UPDATE` / `ACCOUNT_UPDATE` on the user stream) instead of
strategy callbacks.

The step loop, at each stop time t (the earliest of: the next market frame's local time, the next
`SimVenue` arrival or delivery, the engine's schedule, the client's next timer):

1. the engine runs every row up to t (market data at exchange time, fills of resting orders);
2. the market frames whose local time is t are published on the market-data streams;
3. `{"op": "step", "ts_ns": t, "market_frames": M, "user_frames": U, "answers": A, "snapshots": S}`
   goes to the client on the control socket (`GET /sim/lockstep`, a WebSocket on the REST port): M and
   U count every market and user-stream frame sent since the client's hello, A the REST order answers
   released, S the REST depth answers released (a snapshot is served from its local time on, when the
   backtest's book starts);
4. the client waits until it has processed M market frames, U user frames, A answers and S snapshots,
   moves its clock to t (its timers fire, its strategy sends orders), and answers
   `{"op": "ack", "ts_ns": t, "commands": C, "next_timer_ns": T, "order": [[endpoint, client id], ...]}`:
   C order requests sent since hello, `order` this step's in the order they were sent;
5. the simulator waits for those C requests and hands them to `SimVenue` as sent at t, in that order;
6. commands due by t reach the engine, answers due by t are released (user stream + held REST
   bodies): after the timers, in the backtest driver's order at one instant.

Orders are the same in both modes because the strategy sees the same book (the frames of the table's
local times) at the same timer times; fills are the same because the engine sees the same rows and the
same arrivals. One client (one account, the plan's) is served; the feed latency must be constant (the
table's local time = exchange time + that delay, so a frame's publish time follows from its event).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from kestrel.core.clock import SimClock
from kestrel.core.enums import Market
from kestrel.core.identifiers import ClientOrderId
from kestrel.core.instrument import Instrument
from kestrel.core.logs import get_logger
from kestrel.core.venue import ExecutionType, OrderRequest, OrderUpdate, VenueEvent
from kestrel.matching import kernel as k
from kestrel.matching.base import EngineSettings
from kestrel.matching.engine import MatchingEngine
from kestrel.matching.latency import OrderLatency
from kestrel.matching.rows import EventTable
from kestrel.matching.venue import SimVenue
from kestrel.replay.raw import RawFrame
from kestrel.sim.rest import BinanceError

log = get_logger(__name__)

CONTROL_PATH = "/sim/lockstep"
PACED_ENDPOINTS = frozenset({"new_order", "cancel_order"})  # the client's `kestrel.node.pacing.ORDER_ENDPOINTS`
_ANSWER_TYPES = frozenset({ExecutionType.CANCELED, ExecutionType.REJECTED})


@dataclass(frozen=True, slots=True)
class LockstepFrame:
    """One market frame and its local time: when the strategy's side of the backtest sees it."""

    ts_local_ns: int
    frame: RawFrame


@dataclass(slots=True)
class LockstepPlan:
    """What the backtest runs on, handed to the simulator (built by `kestrel.backtest.lockstep`)."""

    instruments: Sequence[Instrument]
    table: EventTable
    frames: Sequence[LockstepFrame]  # in publishing order, local times non-decreasing
    start_ns: int  # the backtest clock's start (the table's first exchange time)
    order_latency: OrderLatency
    settings: EngineSettings = field(default_factory=EngineSettings)
    account: str = "lockstep"
    spot_balances: Mapping[str, Decimal] = field(default_factory=dict)
    futures_balances: Mapping[str, Decimal] = field(default_factory=dict)
    # when the backtest's strategy side sees each symbol's recorded depth snapshot (its local time);
    # REST depth is answered from then on, so the node's book starts when the backtest's does
    snapshot_local_ns: Mapping[tuple[Market, str], int] = field(default_factory=dict)
    drain_after_ns: int = 5 * 1_000_000_000  # as the backtest: answers in flight when the data ends
    ack_timeout_s: float = 30.0  # the client must answer a step within this (wall) time
    command_wait_s: float = 2.0  # announced requests that do not come within this are given up


@dataclass(slots=True)
class LockstepCounters:
    steps: int = 0
    market_frames: int = 0
    user_frames: int = 0
    commands: int = 0
    answers_released: int = 0
    snapshots: int = 0  # REST depth answers released
    missing_commands: int = 0  # announced by an ack, never received (should stay 0)


@dataclass(slots=True)
class _Held:
    """A REST order request waiting for its answer (the first matching delivery for its order)."""

    kind: str  # "submit" or "cancel"
    future: asyncio.Future[OrderUpdate]


class LockstepSession:
    """The simulator's side of lockstep: the engine on the plan's table, `SimVenue`, the step loop."""

    def __init__(
        self,
        plan: LockstepPlan,
        publish_frame: Callable[[RawFrame], bool],
        dispatch: Callable[[list[OrderUpdate]], None],
        user_frames_sent: Callable[[], int],
        set_time: Callable[[int], None],
        client_ready: Callable[[], bool],
    ) -> None:
        if not plan.frames:
            raise ValueError("a lockstep plan needs market frames to publish")
        self.plan = plan
        self.engine = MatchingEngine(plan.instruments, plan.settings)
        self.engine.open_account(plan.account, plan.spot_balances, plan.futures_balances)
        self.engine.load(plan.table)
        self.clock = SimClock(plan.start_ns)
        self.venue = SimVenue(self.engine, plan.account, self.clock, plan.order_latency, client_id_prefix="ls")
        self.venue.set_event_handler(self._on_delivered)
        self.counters = LockstepCounters()
        self._publish_frame = publish_frame
        self._dispatch = dispatch
        self._user_frames_sent = user_frames_sent
        self._set_time = set_time
        self._client_ready = client_ready
        self._held: dict[str, deque[_Held]] = {}
        self._depth_waiting: list[tuple[int, asyncio.Future[None]]] = []
        # commands received during a step, handed to SimVenue once the ack gives the client's send order
        # (requests on separate HTTP connections may arrive in any order; the latency samples and the
        # engine's order ids follow the order of SimVenue calls)
        self._pending: list[tuple[tuple[str, str], Callable[[], object]]] = []
        self._received = asyncio.Event()
        self._client: web.WebSocketResponse | None = None
        self.finished = asyncio.Event()
        set_time(plan.start_ns)

    # ---- the REST side: commands from the client --------------------------------------------------
    def now_ns(self) -> int:
        return self.clock.timestamp_ns()

    def check_account(self, account_id: str) -> None:
        if account_id != self.plan.account:
            raise BinanceError(-2015, f"lockstep serves the account '{self.plan.account}' only", status=401)

    async def submit(self, account_id: str, request: OrderRequest) -> OrderUpdate:
        """Hand the order to `SimVenue` as sent now; answer when its first update is delivered."""
        self.check_account(account_id)
        if not request.client_order_id:
            raise BinanceError(-1102, "lockstep needs newClientOrderId on every order")
        held = self._hold("submit", request.client_order_id)
        self._pending.append((("new_order", request.client_order_id), lambda: self.venue.submit_order(request)))
        return await self._answer(held)

    async def cancel(self, account_id: str, market: Market, symbol: str, client_order_id: str) -> OrderUpdate:
        """Cancel as sent now; the answer is the cancel's own outcome (CANCELED or the refusal)."""
        self.check_account(account_id)
        held = self._hold("cancel", client_order_id)
        command = ("cancel_order", client_order_id)
        self._pending.append((command, lambda: self.venue.cancel_order(market, symbol, ClientOrderId(client_order_id))))
        return await self._answer(held)

    @staticmethod
    def paces(endpoint: str, market: Market | None) -> bool:
        """The requests a lockstep client counts (its order requests): USD-M new order and cancel."""
        return market is Market.FUTURES and endpoint in PACED_ENDPOINTS

    def count_immediate(self) -> None:
        """A paced request answered at once (refused by validation, or not routed through lockstep):
        it counts as sent and answered, as the client counts it."""
        self.counters.commands += 1
        self.counters.answers_released += 1
        self._received.set()

    def _hold(self, kind: str, client_order_id: str) -> _Held:
        held = _Held(kind, asyncio.get_running_loop().create_future())
        self._held.setdefault(client_order_id, deque()).append(held)
        self.counters.commands += 1
        self._received.set()
        return held

    async def _answer(self, held: _Held) -> OrderUpdate:
        update = await held.future
        if update.execution_type is ExecutionType.REJECTED:
            raise BinanceError(update.code or -1013, update.reason or "rejected")
        return update

    async def depth_gate(self, market: Market, symbol: str) -> None:
        """REST depth for `symbol` waits until the run reaches the snapshot's local time."""
        due = self.plan.snapshot_local_ns.get((market, symbol))
        if due is None or due <= self.clock.timestamp_ns():
            self.counters.snapshots += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._depth_waiting.append((due, waiter))
        await waiter

    def _release_depth(self, now_ns: int) -> None:
        waiting = []
        for due, waiter in self._depth_waiting:
            if due <= now_ns:
                self.counters.snapshots += 1
                waiter.set_result(None)
            else:
                waiting.append((due, waiter))
        self._depth_waiting = waiting

    @property
    def held_requests(self) -> int:
        return sum(len(queue) for queue in self._held.values())

    # ---- deliveries: SimVenue → the wire ----------------------------------------------------------
    def _on_delivered(self, event: VenueEvent) -> None:
        if isinstance(event, OrderUpdate):
            queue = self._held.get(event.order.client_order_id)
            if queue:
                # a submit is answered by its order's first update; a cancel by the first CANCELED or
                # refusal after it was sent (a fill from the market may be delivered before it)
                head = queue[0]
                if head.kind == "submit" or event.execution_type in _ANSWER_TYPES:
                    queue.popleft()
                    if not queue:
                        del self._held[event.order.client_order_id]
                    self.counters.answers_released += 1
                    head.future.set_result(event)
            if event.execution_type is ExecutionType.REJECTED:
                return  # a refused request is answered on REST only, as on the exchange
        self._dispatch([event])  # type: ignore[list-item]

    # ---- the control socket -----------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        if self._client is not None:
            await ws.send_bytes(orjson.dumps({"op": "error", "msg": "a lockstep client is already connected"}))
            await ws.close()
            return ws
        self._client = ws
        try:
            hello = await self._receive(ws)
            if hello.get("op") != "hello":
                raise ConnectionError(f"expected hello, got {hello!r}")
            await ws.send_bytes(orjson.dumps({"op": "hello", "start_ns": self.plan.start_ns}))
            await self._wait_ready()
            await self._run(ws)
        except (ConnectionError, TimeoutError) as error:
            log.warning("lockstep client failed", error=str(error))
            with contextlib.suppress(Exception):
                await ws.send_bytes(orjson.dumps({"op": "error", "msg": str(error)}))
        finally:
            self.finished.set()
            await ws.close()
        return ws

    async def _wait_ready(self) -> None:
        """Publishing starts once the client has subscribed every recorded depth stream (a frame sent
        before that would reach nobody, and the client would wait for it forever)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.plan.ack_timeout_s
        while not self._client_ready():
            if loop.time() > deadline:
                raise TimeoutError("the client did not subscribe the recorded depth streams in time")
            await asyncio.sleep(0.01)

    async def _receive(self, ws: web.WebSocketResponse) -> dict[str, Any]:
        message = await ws.receive(timeout=self.plan.ack_timeout_s)
        if message.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
            raise ConnectionError("the lockstep client went away")
        data = orjson.loads(message.data)
        if not isinstance(data, dict):
            raise ConnectionError(f"not a lockstep message: {data!r}")
        return data

    async def _run(self, ws: web.WebSocketResponse) -> None:
        plan, venue, engine = self.plan, self.venue, self.engine
        frames = plan.frames
        position = 0
        # the backtest driver's horizon: the table's last local time + the drain, not reached
        end_of_data = int(plan.table.rows[-1, k.COL_TS_LOCAL]) if len(plan.table) else frames[-1].ts_local_ns
        hard_stop = end_of_data + plan.drain_after_ns
        user_base = self._user_frames_sent()
        next_timer: int | None = None
        while True:
            candidates = [venue.next_due_ns(), next_timer, engine.next_scheduled_ns()]
            if position < len(frames):
                candidates.append(frames[position].ts_local_ns)
            due = [c for c in candidates if c is not None]
            if not due:
                break
            # frames before the table's first row (diffs a snapshot will cover) go out at the start
            stop = max(min(due), self.clock.timestamp_ns())
            if stop >= hard_stop:
                break
            self._advance_engine(stop)
            while position < len(frames) and frames[position].ts_local_ns <= stop:
                if self._publish_frame(frames[position].frame):
                    self.counters.market_frames += 1
                position += 1
            self.clock.advance_to(stop)
            self._set_time(stop)
            self._release_depth(stop)
            self.counters.steps += 1
            self.counters.user_frames = self._user_frames_sent() - user_base
            step = {
                "op": "step",
                "ts_ns": stop,
                "market_frames": self.counters.market_frames,
                "user_frames": self.counters.user_frames,
                "answers": self.counters.answers_released,
                "snapshots": self.counters.snapshots,
            }
            await ws.send_bytes(orjson.dumps(step))
            ack = await self._receive(ws)
            if ack.get("op") != "ack" or ack.get("ts_ns") != stop:
                raise ConnectionError(f"expected the ack of step {stop}, got {ack!r}")
            timer = ack.get("next_timer_ns")
            next_timer = int(timer) if isinstance(timer, int) else None
            await self._wait_commands(int(ack.get("commands", 0)))
            self._send_pending(ack.get("order"))
            # after the client's timers, as the backtest driver (`advance_to` fires them before
            # `process_due`): a command sent now arrives later (entry latency), answers due now go out
            venue.process_due(stop)
        self.counters.user_frames = self._user_frames_sent() - user_base
        end = {
            "op": "end",
            "ts_ns": self.clock.timestamp_ns(),
            "market_frames": self.counters.market_frames,
            "user_frames": self.counters.user_frames,
            "answers": self.counters.answers_released,
            "snapshots": self.counters.snapshots,
        }
        await ws.send_bytes(orjson.dumps(end))

    def _advance_engine(self, stop: int) -> None:
        """Every table row up to `stop`, as the backtest driver runs them (fills on their way back)."""
        engine = self.engine
        while engine.run_until(stop, 0) == k.STATUS_FILLS:
            self.venue.on_engine_events(engine.drain())
        scheduled = engine.next_scheduled_ns()
        if scheduled is not None and scheduled <= stop:
            self.venue.on_engine_events(engine.advance_time(stop))

    async def _wait_commands(self, announced: int) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.plan.command_wait_s
        while self.counters.commands < announced:
            self._received.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                self.counters.missing_commands += announced - self.counters.commands
                log.warning("lockstep: announced order requests never came", missing=announced - self.counters.commands)
                self.counters.commands = announced
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._received.wait(), remaining)

    def _send_pending(self, order: object) -> None:
        """The step's commands to SimVenue (sent at the step's time) in the client's send order."""
        pending, self._pending = self._pending, []
        if isinstance(order, list):
            rank = {(str(kind), str(client_id)): index for index, (kind, client_id) in enumerate(order)}
            pending.sort(key=lambda item: rank.get(item[0], len(rank)))  # stable: the unnamed keep arrival order
        for _, send in pending:
            send()

    def stats(self) -> dict[str, int]:
        counters = self.counters
        return {
            "steps": counters.steps,
            "market_frames": counters.market_frames,
            "user_frames": counters.user_frames,
            "commands": counters.commands,
            "answers_released": counters.answers_released,
            "snapshots": counters.snapshots,
            "missing_commands": counters.missing_commands,
        }
