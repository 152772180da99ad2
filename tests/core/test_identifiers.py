from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kestrel.core.identifiers import (
    client_order_id,
    is_own_client_order_id,
    is_valid_client_order_id,
)


@given(
    st.text(min_size=1, max_size=200),
    st.from_regex(r"[A-Za-z0-9]{1,8}", fullmatch=True),
    st.integers(0, 9999),
)
def test_client_order_ids_are_deterministic_and_valid(intent: str, leg: str, attempt: int) -> None:
    first = client_order_id(intent, leg, attempt)
    assert first == client_order_id(intent, leg, attempt)
    assert is_valid_client_order_id(first)
    assert len(first) <= 36
    assert is_own_client_order_id(first)


def test_different_legs_and_attempts_differ() -> None:
    ids = {client_order_id("intent-1", leg, attempt) for leg in ("e", "tp", "sl") for attempt in range(5)}
    assert len(ids) == 15
    assert client_order_id("intent-1") != client_order_id("intent-2")


@pytest.mark.parametrize(("leg", "attempt"), [("", 0), ("bad-leg", 0), ("toolonglegname", 0), ("e", -1), ("e", 10000)])
def test_bad_inputs_raise(leg: str, attempt: int) -> None:
    with pytest.raises(ValueError):
        client_order_id("intent", leg, attempt)


def test_binance_rule() -> None:
    assert is_valid_client_order_id("web_abc:/.-1")
    assert not is_valid_client_order_id("x" * 37)
    assert not is_valid_client_order_id("has space")
    assert not is_own_client_order_id("web_123")
