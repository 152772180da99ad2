from __future__ import annotations

import pytest

from kestrel.core.bus import Bus, MessageBus


def test_delivery_order_patterns_and_idempotent_subscribe() -> None:
    bus = MessageBus()
    seen: list[tuple[str, object]] = []

    def low(message: object) -> None:
        seen.append(("low", message))

    def high(message: object) -> None:
        seen.append(("high", message))

    def everything(message: object) -> None:
        seen.append(("all", message))

    bus.subscribe("data.book.*", low)
    bus.subscribe("data.book.*", low)  # twice: delivered once
    bus.subscribe("data.book.futures.BTCUSDT", high, priority=10)
    bus.subscribe("*", everything)
    bus.publish("data.book.futures.BTCUSDT", 1)
    bus.publish("data.trade.futures.BTCUSDT", 2)
    assert seen == [("high", 1), ("low", 1), ("all", 1), ("all", 2)]
    bus.unsubscribe("*", everything)
    assert not bus.has_subscribers("data.trade.futures.BTCUSDT")
    assert isinstance(bus, Bus)


def test_bad_patterns() -> None:
    bus = MessageBus()
    with pytest.raises(ValueError, match="pattern"):
        bus.subscribe("data.*.x", print)
    with pytest.raises(ValueError, match="empty"):
        bus.subscribe("", print)
