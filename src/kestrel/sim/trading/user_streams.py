"""User data streams: listenKeys, who listens to which account, and event delivery (spec §5.10, §6).

- A listenKey belongs to one account and market. `POST` returns the account's active key (extended)
  or a new one; `PUT` extends it to the full validity (60 min, × `time_scale`); `DELETE` closes it.
  A key not kept alive expires: its listeners get `{"e":"listenKeyExpired",...}` and nothing more.
- Listeners are WebSocket connections (legacy `/ws/<key>`, USD-M `/private/ws/<key>`, stream mode
  `/private/stream?...`, or a SUBSCRIBE of the key) and spot WS-API subscriptions
  (`userDataStream.subscribe.signature`, events wrapped as `{"subscriptionId": n, "event": {...}}`).
- Each event is serialised once per delivery form. Events are delivered in the engine's order (one
  writer per connection keeps it), so ORDER_TRADE_UPDATE precedes its ACCOUNT_UPDATE.

Faults: `silence(seconds)` drops every user event for a while (the client must notice the gap and
reconcile by REST); `expire_all()` expires every key at once. Both are counted.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from kestrel.core.enums import Market
from kestrel.sim.hub import Connection
from kestrel.sim.rest import BinanceError


class TradingCountersLike(Protocol):
    user_events_sent: int
    user_events_dropped: int
    listen_keys_created: int
    listen_keys_expired: int


@dataclass(slots=True)
class ListenKey:
    key: str
    account: str
    market: Market
    expires_s: float
    listeners: dict[Connection, bool] = field(default_factory=dict)  # connection → combined framing


@dataclass(slots=True)
class ApiSubscription:
    """A spot WS-API user data subscription on one connection."""

    connection: Connection
    subscription_id: int
    account: str


class UserStreamHub:
    def __init__(
        self,
        seed: int,
        validity_s: float,
        now_s: Callable[[], float],
        now_ms: Callable[[], int],
        counters: TradingCountersLike,
    ) -> None:
        self._seed = seed
        self._sequence = itertools.count(1)
        self.validity_s = validity_s
        self._now_s = now_s
        self._now_ms = now_ms
        self.counters = counters
        self.keys: dict[str, ListenKey] = {}
        self._by_account: dict[tuple[str, Market], ListenKey] = {}
        self._api: dict[str, list[ApiSubscription]] = {}  # account → WS-API subscriptions
        self.silent_until_s = 0.0

    # ---- listenKey life cycle ------------------------------------------------------------------
    def _new_key(self) -> str:
        digest = hashlib.sha256(f"kestrel-sim:{self._seed}:listenKey:{next(self._sequence)}".encode()).hexdigest()
        return digest  # 64 letters and digits, like the exchange's

    def create(self, account: str, market: Market) -> str:
        existing = self._by_account.get((account, market))
        if existing is not None:
            existing.expires_s = self._now_s() + self.validity_s
            return existing.key
        key = ListenKey(self._new_key(), account, market, self._now_s() + self.validity_s)
        self.keys[key.key] = key
        self._by_account[(account, market)] = key
        self.counters.listen_keys_created += 1
        return key.key

    def key_of(self, account: str, market: Market) -> str | None:
        found = self._by_account.get((account, market))
        return found.key if found is not None else None

    def _owned(self, key: str, account: str, market: Market) -> ListenKey:
        found = self.keys.get(key)
        if found is None or found.account != account or found.market is not market:
            raise BinanceError(-1125, "This listenKey does not exist.")
        return found

    def keepalive(self, key: str, account: str, market: Market) -> None:
        self._owned(key, account, market).expires_s = self._now_s() + self.validity_s

    def close(self, key: str, account: str, market: Market) -> None:
        found = self._owned(key, account, market)
        self._drop(found)

    def _drop(self, key: ListenKey) -> None:
        self.keys.pop(key.key, None)
        if self._by_account.get((key.account, key.market)) is key:
            del self._by_account[(key.account, key.market)]
        key.listeners.clear()

    def expire_due(self) -> int:
        """Expire keys past their validity; returns how many."""
        now = self._now_s()
        due = [key for key in self.keys.values() if key.expires_s <= now]
        for key in due:
            self._expire(key)
        return len(due)

    def expire_all(self) -> int:
        keys = list(self.keys.values())
        for key in keys:
            self._expire(key)
        return len(keys)

    def _expire(self, key: ListenKey) -> None:
        event = {"e": "listenKeyExpired", "E": self._now_ms(), "listenKey": key.key}
        raw = orjson.dumps(event)
        for connection, combined in key.listeners.items():
            connection.push(_wrap(key.key, raw) if combined else raw)
        self.counters.listen_keys_expired += 1
        self._drop(key)

    # ---- listeners -----------------------------------------------------------------------------
    def attach(self, connection: Connection, key: str, combined: bool) -> ListenKey:
        found = self.keys.get(key)
        if found is None:
            raise BinanceError(-1125, "This listenKey does not exist.")
        found.listeners[connection] = combined
        return found

    def detach(self, connection: Connection, key: str | None = None) -> None:
        targets = [self.keys[key]] if key is not None and key in self.keys else list(self.keys.values())
        for listen_key in targets:
            listen_key.listeners.pop(connection, None)
        if key is None:
            for account, subscriptions in list(self._api.items()):
                kept = [s for s in subscriptions if s.connection is not connection]
                if kept:
                    self._api[account] = kept
                else:
                    del self._api[account]

    def subscribe_api(self, connection: Connection, subscription_id: int, account: str) -> None:
        self._api.setdefault(account, []).append(ApiSubscription(connection, subscription_id, account))

    def unsubscribe_api(self, connection: Connection, subscription_id: int | None) -> list[ApiSubscription]:
        removed: list[ApiSubscription] = []
        for account, subscriptions in list(self._api.items()):
            kept: list[ApiSubscription] = []
            for subscription in subscriptions:
                matches = subscription.connection is connection and subscription_id in (
                    None,
                    subscription.subscription_id,
                )
                (removed if matches else kept).append(subscription)
            if kept:
                self._api[account] = kept
            else:
                del self._api[account]
        return removed

    def api_subscriptions(self, connection: Connection) -> list[ApiSubscription]:
        return [s for subscriptions in self._api.values() for s in subscriptions if s.connection is connection]

    def listeners(self, account: str, market: Market) -> int:
        key = self._by_account.get((account, market))
        count = len(key.listeners) if key is not None else 0
        if market is Market.SPOT:
            count += len(self._api.get(account, []))
        return count

    # ---- delivery ------------------------------------------------------------------------------
    def silence(self, seconds: float) -> None:
        self.silent_until_s = max(self.silent_until_s, self._now_s() + seconds)

    def publish(self, account: str, market: Market, event: dict[str, Any]) -> None:
        key = self._by_account.get((account, market))
        subscriptions = self._api.get(account, []) if market is Market.SPOT else []
        if (key is None or not key.listeners) and not subscriptions:
            return
        if self.silent_until_s > self._now_s():
            self.counters.user_events_dropped += 1
            return
        raw = orjson.dumps(event)
        if key is not None:
            wrapped: bytes | None = None
            for connection, combined in key.listeners.items():
                if combined:
                    wrapped = wrapped or _wrap(key.key, raw)
                    connection.push(wrapped)
                else:
                    connection.push(raw)
        for subscription in subscriptions:
            subscription.connection.push(
                b'{"subscriptionId":' + str(subscription.subscription_id).encode() + b',"event":' + raw + b"}"
            )
        self.counters.user_events_sent += 1


def _wrap(stream: str, raw: bytes) -> bytes:
    return b'{"stream":"' + stream.encode() + b'","data":' + raw + b"}"
