"""Fault injection: what can go wrong between Binance and us, on purpose and counted exactly.

A `FaultPlan` (from CLI flags, a YAML file, or Python) sets rates and schedules:

- stream messages: `gap_rate` withholds diff-depth messages (the next one's `U`/`pu` no longer links:
  a sequence gap), `drop_rate` drops other messages (by default only on aggTrade and trade, whose
  contiguous ids let a client count every drop), `duplicate_rate` sends a message twice,
  `reorder_rate` holds a message back and sends it after the next one of the same stream,
  `delay_ms` (+ `delay_jitter_ms`) delays delivery, order kept; `malformed_rate` and
  `unknown_event_rate` send an *extra* frame before a message (truncated JSON, or a well-formed event
  of an unknown type), so the real sequence is untouched and only the parser's resilience is tested;
- connections: `disconnect_every_s` closes (a fraction of) the connections, `stall_every_s` freezes
  them for `stall_duration_s` (frames queue up and arrive late), `shutdown_notice_every_s` sends the
  spot `serverShutdown` event and then closes;
- REST: `rest_5xx_rate` / `rest_429_rate` / `rest_418_rate` answer a fraction of requests with that
  status (429/418 with `Retry-After`), `stale_snapshot_rate` serves depth snapshots as the book was
  `stale_snapshot_age_ms` ago (older than the diffs a client has buffered since it subscribed);
- the clock: `clock_skew_ms` shifts the server's clock (serverTime and every event time);
- trading (`kestrel.sim.trading`): `order_5xx_placed_rate` places the order then answers 5xx (outcome
  unknown to the client), `order_5xx_unplaced_rate` answers 5xx without placing it,
  `order_timeout_rate` places it, stalls `order_timeout_stall_s` and closes the connection unanswered;
  `user_stream_silence_every_s` drops every user-data event for `user_stream_silence_s`,
  `listen_key_expire_every_s` expires every listenKey.

Decisions are drawn from one generator seeded from the plan's seed (or the simulator's), once per
published message whether or not anyone is subscribed, so the same run injects the same faults on the
same messages. A fault is only *counted* when it reaches at least one subscriber; a client test can
therefore assert `gaps_detected == gaps_injected`.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from kestrel.core.errors import ConfigurationError
from kestrel.sim.streams import StreamKind

Rate = float
ALL_KINDS = [kind.value for kind in StreamKind if kind is not StreamKind.SERVER]


class FaultPlan(BaseModel):
    """Every fault the simulator can inject. All default to off."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int | None = Field(None, description="Seed of the fault generator (default: the simulator's seed)")
    symbols: list[str] | None = Field(None, description="Restrict message faults to these symbols (upper case)")
    gap_rate: Rate = Field(0.0, ge=0, le=1, description="Fraction of diff-depth messages withheld (sequence gaps)")
    drop_rate: Rate = Field(0.0, ge=0, le=1, description="Fraction of other stream messages dropped")
    drop_streams: list[StreamKind] = Field(
        [StreamKind.AGG_TRADE, StreamKind.TRADE], description="Stream kinds `drop_rate` applies to"
    )
    duplicate_rate: Rate = Field(0.0, ge=0, le=1, description="Fraction of messages sent twice")
    duplicate_streams: list[StreamKind] = Field([StreamKind(kind) for kind in ALL_KINDS])
    reorder_rate: Rate = Field(0.0, ge=0, le=1, description="Fraction of messages swapped with the next one")
    reorder_streams: list[StreamKind] = Field([StreamKind(kind) for kind in ALL_KINDS])
    malformed_rate: Rate = Field(0.0, ge=0, le=1, description="Fraction of messages preceded by a corrupt frame")
    unknown_event_rate: Rate = Field(
        0.0, ge=0, le=1, description="Fraction of messages preceded by an event of an unknown type"
    )
    delay_ms: float = Field(0.0, ge=0, le=60_000, description="Extra delivery delay of every message")
    delay_jitter_ms: float = Field(0.0, ge=0, le=60_000, description="Uniform extra delay on top (order kept)")
    disconnect_every_s: float | None = Field(None, gt=0, description="Close connections at this period")
    disconnect_fraction: float = Field(1.0, gt=0, le=1, description="Share of connections closed each time")
    stall_every_s: float | None = Field(None, gt=0, description="Freeze every connection at this period")
    stall_duration_s: float = Field(5.0, gt=0, description="How long a stall lasts")
    shutdown_notice_every_s: float | None = Field(
        None, gt=0, description="Spot: send serverShutdown then close, at this period"
    )
    rest_5xx_rate: Rate = Field(0.0, ge=0, le=1, description="Fraction of REST requests answered 5xx")
    rest_5xx_status: int = Field(503, ge=500, le=599)
    rest_429_rate: Rate = Field(0.0, ge=0, le=1, description="Fraction answered 429 (-1003, Retry-After)")
    rest_418_rate: Rate = Field(0.0, ge=0, le=1, description="Fraction answered 418 (IP banned, Retry-After)")
    retry_after_s: int = Field(1, ge=0, description="Retry-After seconds on injected 429/418")
    stale_snapshot_rate: Rate = Field(0.0, ge=0, le=1, description="Fraction of depth snapshots served stale")
    stale_snapshot_age_ms: int = Field(3000, ge=1, description="How old a stale snapshot is")
    clock_skew_ms: int = Field(0, ge=-3_600_000, le=3_600_000, description="Server clock minus true time")
    order_5xx_placed_rate: Rate = Field(0.0, ge=0, le=1, description="Order requests placed, then answered 5xx")
    order_5xx_unplaced_rate: Rate = Field(0.0, ge=0, le=1, description="Order requests answered 5xx, not placed")
    order_timeout_rate: Rate = Field(0.0, ge=0, le=1, description="Order requests placed, then left unanswered")
    order_timeout_stall_s: float = Field(5.0, ge=0, le=600, description="Stall before an unanswered order closes")
    user_stream_silence_every_s: float | None = Field(None, gt=0, description="Drop user-data events at this period")
    user_stream_silence_s: float = Field(5.0, gt=0, description="How long each user-stream silence lasts")
    listen_key_expire_every_s: float | None = Field(None, gt=0, description="Expire every listenKey at this period")

    @model_validator(mode="after")
    def _rates_fit(self) -> FaultPlan:
        if self.rest_5xx_rate + self.rest_429_rate + self.rest_418_rate > 1:
            raise ValueError("rest_5xx_rate + rest_429_rate + rest_418_rate must not exceed 1")
        if self.order_5xx_placed_rate + self.order_5xx_unplaced_rate + self.order_timeout_rate > 1:
            raise ValueError("order_5xx_placed_rate + order_5xx_unplaced_rate + order_timeout_rate must not exceed 1")
        return self

    @property
    def has_message_faults(self) -> bool:
        return any((self.gap_rate, self.drop_rate, self.duplicate_rate, self.reorder_rate))

    @property
    def has_extra_frames(self) -> bool:
        return self.malformed_rate > 0 or self.unknown_event_rate > 0

    @property
    def has_delay(self) -> bool:
        return self.delay_ms > 0 or self.delay_jitter_ms > 0


def _problem_lines(error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"]) or "faults"
        message = "unknown key" if item["type"] == "extra_forbidden" else item["msg"]
        problems.append(f"{location}: {message}")
    return "; ".join(problems)


def fault_plan_from_mapping(values: Mapping[str, Any], source: str = "faults") -> FaultPlan:
    """Validate a mapping (a YAML document's top level, or its `faults:` section) into a FaultPlan."""
    if "faults" in values and isinstance(values["faults"], Mapping):
        values = values["faults"]
    try:
        return FaultPlan.model_validate(dict(values))
    except ValidationError as exc:
        raise ConfigurationError(f"{source}: {_problem_lines(exc)}") from None


def load_fault_plan(path: Path, overrides: Mapping[str, Any] | None = None) -> FaultPlan:
    """A FaultPlan from a YAML file, with `overrides` (CLI flags) on top."""
    if not path.exists():
        raise ConfigurationError(f"{path}: no such file")
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigurationError(f"{path}: invalid YAML{where}") from None
    if not isinstance(document, Mapping):
        raise ConfigurationError(f"{path}: expected a mapping of fault settings")
    section = document.get("faults")
    values = dict(section if isinstance(section, Mapping) else document)
    values.update(overrides or {})
    return fault_plan_from_mapping(values, str(path))


# Message actions (plain ints: this runs once per published message)
SEND = 0
DROP = 1
GAP = 2
DUPLICATE = 3
HOLD = 4
MALFORMED = 5
UNKNOWN_EVENT = 6


def periodic_faults_due(last: dict[str, float], periods: Mapping[str, float | None], now_s: float) -> list[str]:
    """The plan's periodic faults whose period has passed since they last fired (a fault's first
    period counts from the first call); `last` is the caller's memory of when each fired."""
    due = []
    for name, period in periods.items():
        if period is None:
            continue
        started = last.setdefault(name, now_s)
        if now_s - started >= period:
            last[name] = now_s
            due.append(name)
    return due


class FaultInjector:
    """Draws the per-message fault decisions of a plan; manual injections (`inject_gap`) take priority."""

    def __init__(self, plan: FaultPlan, default_seed: int) -> None:
        self.plan = plan
        seed = plan.seed if plan.seed is not None else default_seed
        # separate generators, so REST traffic (timing-dependent) never shifts the message decisions
        self._rng = random.Random(f"faults:messages:{seed}")
        self._delay_rng = random.Random(f"faults:delay:{seed}")
        self._rest_rng = random.Random(f"faults:rest:{seed}")
        self._on_demand_rng = random.Random(f"faults:on-demand:{seed}")
        self._extras_rng = random.Random(f"faults:extra-frames:{seed}")
        self.connection_rng = random.Random(f"faults:connections:{seed}")
        self._drop = frozenset(plan.drop_streams)
        self._duplicate = frozenset(plan.duplicate_streams)
        self._reorder = frozenset(plan.reorder_streams)
        self._symbols = frozenset(plan.symbols) if plan.symbols is not None else None
        self._active = plan.has_message_faults
        self.pending_gaps: dict[tuple[str, str], int] = {}  # (market, symbol) → depth messages to withhold

    def message_action(
        self, market: str, symbol: str | None, kind: StreamKind, subscribed: bool, on_demand: bool = False
    ) -> int:
        """The fault for one published message. The random draw happens whether or not the stream has
        a subscriber (so subscriptions never shift the fault sequence); manual gaps wait for one.
        Streams rendered only on demand (klines) draw from their own generator for the same reason."""
        if (
            subscribed
            and self.pending_gaps
            and kind is StreamKind.DEPTH
            and symbol is not None
            and self._take_pending_gap(market, symbol)
        ):
            return GAP
        if not self._active:
            return SEND
        draw = (self._on_demand_rng if on_demand else self._rng).random()
        if self._symbols is not None and symbol not in self._symbols:
            return SEND
        plan = self.plan
        if kind is StreamKind.DEPTH:
            if draw < plan.gap_rate:
                return GAP
            draw -= plan.gap_rate
        elif kind in self._drop:
            if draw < plan.drop_rate:
                return DROP
            draw -= plan.drop_rate
        if kind in self._duplicate:
            if draw < plan.duplicate_rate:
                return DUPLICATE
            draw -= plan.duplicate_rate
        if kind in self._reorder and draw < plan.reorder_rate:
            return HOLD
        return SEND

    def extra_frame(self) -> int:
        """Before a delivered message: MALFORMED, UNKNOWN_EVENT or SEND (no extra frame)."""
        plan = self.plan
        draw = self._extras_rng.random()
        if draw < plan.malformed_rate:
            return MALFORMED
        if draw < plan.malformed_rate + plan.unknown_event_rate:
            return UNKNOWN_EVENT
        return SEND

    def _take_pending_gap(self, market: str, symbol: str) -> bool:
        key = (market, symbol)
        remaining = self.pending_gaps.get(key)
        if not remaining:
            return False
        if remaining == 1:
            del self.pending_gaps[key]
        else:
            self.pending_gaps[key] = remaining - 1
        return True

    def delay_s(self) -> float:
        plan = self.plan
        jitter = self._delay_rng.uniform(0.0, plan.delay_jitter_ms) if plan.delay_jitter_ms else 0.0
        return (plan.delay_ms + jitter) / 1000.0

    def rest_fault(self) -> int | None:
        """An HTTP status to answer with instead of serving the request, or None."""
        plan = self.plan
        total = plan.rest_5xx_rate + plan.rest_429_rate + plan.rest_418_rate
        if total == 0:
            return None
        draw = self._rest_rng.random()
        if draw < plan.rest_5xx_rate:
            return plan.rest_5xx_status
        if draw < plan.rest_5xx_rate + plan.rest_429_rate:
            return 429
        if draw < total:
            return 418
        return None

    def stale_snapshot(self) -> bool:
        return self.plan.stale_snapshot_rate > 0 and self._rest_rng.random() < self.plan.stale_snapshot_rate
