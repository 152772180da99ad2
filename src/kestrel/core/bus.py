"""In-process message bus: single-threaded, synchronous, deterministic.

Handlers run in the order (priority descending, then subscription order), immediately on publish.
Topics are dot-separated (``data.book.futures.BTCUSDT``); a subscription pattern may end in ``.*``
(any suffix) or be ``*`` (everything). The service mode (Redis Streams) implements the same `Bus`
protocol, so components never know which one they are on.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

Handler = Callable[[Any], None]


@runtime_checkable
class Bus(Protocol):
    def subscribe(self, pattern: str, handler: Handler, priority: int = 0) -> None: ...

    def unsubscribe(self, pattern: str, handler: Handler) -> None: ...

    def publish(self, topic: str, message: object) -> None: ...


@dataclass(order=True, slots=True)
class _Subscription:
    sort_key: tuple[int, int]
    pattern: str = field(compare=False)
    handler: Handler = field(compare=False)

    def matches(self, topic: str) -> bool:
        if self.pattern == "*" or self.pattern == topic:
            return True
        if self.pattern.endswith(".*"):
            return topic.startswith(self.pattern[:-1])
        return False


class MessageBus:
    """The default in-process `Bus`. Resolved handler lists are cached per topic."""

    def __init__(self) -> None:
        self._subscriptions: list[_Subscription] = []
        self._cache: dict[str, list[Handler]] = {}
        self._sequence = itertools.count()
        self.published_count = 0

    def subscribe(self, pattern: str, handler: Handler, priority: int = 0) -> None:
        if not pattern:
            raise ValueError("pattern must not be empty")
        if "*" in pattern and pattern != "*" and not (pattern.endswith(".*") and pattern.count("*") == 1):
            raise ValueError(f"unsupported pattern {pattern!r}: use 'a.b', 'a.*' or '*'")
        for existing in self._subscriptions:
            if existing.pattern == pattern and existing.handler == handler:
                return  # idempotent: subscribing twice does not deliver twice
        self._subscriptions.append(_Subscription((-priority, next(self._sequence)), pattern, handler))
        self._subscriptions.sort()
        self._cache.clear()

    def unsubscribe(self, pattern: str, handler: Handler) -> None:
        before = len(self._subscriptions)
        self._subscriptions = [s for s in self._subscriptions if not (s.pattern == pattern and s.handler == handler)]
        if len(self._subscriptions) != before:
            self._cache.clear()

    def handlers_for(self, topic: str) -> list[Handler]:
        handlers = self._cache.get(topic)
        if handlers is None:
            handlers = [s.handler for s in self._subscriptions if s.matches(topic)]
            self._cache[topic] = handlers
        return handlers

    def publish(self, topic: str, message: object) -> None:
        self.published_count += 1
        for handler in self.handlers_for(topic):
            handler(message)

    def has_subscribers(self, topic: str) -> bool:
        return bool(self.handlers_for(topic))
