from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from kestrel.binance.order_book import OrderBook
from kestrel.core.enums import Market


def test_apply_insert_update_remove_and_best_levels() -> None:
    book = OrderBook(Market.FUTURES, "BTCUSDT")
    book.reset([(100.0, 1.0), (99.5, 2.0)], [(100.5, 3.0), (101.0, 4.0)], update_id=10, ts_event=5)
    assert book.best_bid() == (100.0, 1.0) and book.best_ask() == (100.5, 3.0)
    book.apply([(100.0, 0.0), (99.8, 7.0)], [(100.5, 0.5), (102.0, 0.0)], update_id=11, ts_event=6)
    assert book.best_bid() == (99.8, 7.0)
    assert book.best_ask() == (100.5, 0.5)
    assert book.update_id == 11 and book.ts_event == 6
    assert book.bids() == [(99.8, 7.0), (99.5, 2.0)]
    assert book.asks(1) == [(100.5, 0.5)]
    assert book.mid() == (99.8 + 100.5) / 2
    assert not book.is_crossed()
    book.apply([(100.6, 1.0)], [], 12, 7)
    assert book.is_crossed()


def test_removing_an_unknown_level_is_ignored_and_empty_book() -> None:
    book = OrderBook(Market.SPOT, "X")
    assert book.best_bid() is None and book.best_ask() is None and book.mid() is None and book.is_empty
    book.apply([(1.0, 0.0)], [(2.0, 0.0)], 1, 1)
    assert book.is_empty and book.bids(5) == [] and book.asks(5) == []


def test_prices_from_wire_strings_are_exact_keys() -> None:
    """One decimal value, however the wire pads it, is one level; neighbouring ticks never merge."""
    book = OrderBook(Market.SPOT, "X")
    book.apply([(float("61837.63000000"), 1.0), (float("0.00000001"), 1.0)], [], 1, 1)
    book.apply([(float("61837.63"), 5.0), (float("61837.62999999"), 2.0), (float("1E-8"), 3.0)], [], 2, 2)
    assert book.bids() == [(61837.63, 5.0), (61837.62999999, 2.0), (1e-08, 3.0)]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.booleans(),
            st.integers(min_value=1, max_value=60),
            st.sampled_from([0.0, 0.0, 1.0, 2.5, 3.0]),
        ),
        max_size=400,
    ),
    st.integers(min_value=1, max_value=12),
)
def test_matches_a_sorted_reference_under_random_updates(operations: list[tuple[bool, int, float]], depth: int) -> None:
    book = OrderBook(Market.FUTURES, "X")
    reference: dict[bool, dict[float, float]] = {True: {}, False: {}}
    for is_bid, tick, quantity in operations:
        price = tick / 10  # 0.1 .. 6.0: bids and asks may overlap, the book does not care
        book.apply([(price, quantity)] if is_bid else [], [] if is_bid else [(price, quantity)], 1, 1)
        if quantity:
            reference[is_bid][price] = quantity
        else:
            reference[is_bid].pop(price, None)
        expected_bids = sorted(reference[True].items(), reverse=True)
        expected_asks = sorted(reference[False].items())
        assert book.bids(depth) == expected_bids[:depth]
        assert book.asks(depth) == expected_asks[:depth]
        assert book.best_bid() == (expected_bids[0] if expected_bids else None)
        assert book.best_ask() == (expected_asks[0] if expected_asks else None)
    assert book.bids() == sorted(reference[True].items(), reverse=True)
    assert book.as_dicts() == (reference[True], reference[False])
