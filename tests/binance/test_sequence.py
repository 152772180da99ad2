from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from kestrel.binance.sequence import IdSequence, MonotonicSequence
from kestrel.core.events import QualityFlag


def test_contiguous_ids_are_clean() -> None:
    sequence = IdSequence()
    assert [sequence.check(i) for i in range(100, 110)] == [0] * 10
    assert sequence.counters.messages == 10 and sequence.counters.drops == 0


def test_hole_then_late_arrivals_then_duplicates() -> None:
    sequence = IdSequence()
    sequence.check(1)
    assert sequence.check(5) == QualityFlag.GAP_BEFORE  # 2, 3, 4 missing
    assert sequence.counters.drops == 3 and sequence.counters.gaps == 1 and sequence.missing == 3
    assert sequence.check(3) == QualityFlag.OUT_OF_ORDER  # late: no longer a drop
    assert sequence.counters.drops == 2 and sequence.counters.out_of_order == 1
    assert sequence.check(3) == QualityFlag.DUPLICATE
    assert sequence.check(5) == QualityFlag.DUPLICATE
    assert sequence.check(2) == QualityFlag.OUT_OF_ORDER
    assert sequence.check(4) == QualityFlag.OUT_OF_ORDER
    assert sequence.counters.drops == 0 and sequence.missing == 0
    assert sequence.counters.duplicates == 2


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=60), max_size=200))
def test_counts_are_exact_for_any_delivery(later_ids: list[int]) -> None:
    """Whatever the delivery after the stream's first message (drops, duplicates, any order):
    drops = ids never delivered, duplicates = repeats, out-of-order = late first deliveries."""
    ids = [0, *later_ids]
    sequence = IdSequence()
    flags = [sequence.check(message_id) for message_id in ids]
    seen = set(ids)
    counters = sequence.counters
    assert counters.messages == len(ids)
    assert counters.duplicates == len(ids) - len(seen)
    assert counters.drops == len(set(range(max(ids) + 1)) - seen)
    assert counters.out_of_order == sum(1 for flag in flags if flag == QualityFlag.OUT_OF_ORDER)
    high = -1
    late = 0
    for message_id in dict.fromkeys(ids):  # first deliveries, in order
        late += message_id < high
        high = max(high, message_id)
    assert counters.out_of_order == late


def test_monotonic_update_ids() -> None:
    sequence = MonotonicSequence()
    assert sequence.check(10) == 0
    assert sequence.check(12) == 0
    assert sequence.check(12) == QualityFlag.DUPLICATE
    assert sequence.check(11) == QualityFlag.OUT_OF_ORDER
    assert sequence.counters.duplicates == 1 and sequence.counters.out_of_order == 1
