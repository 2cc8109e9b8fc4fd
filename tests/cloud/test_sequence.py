"""The anti-replay window against RFC 4303 section 3.4.3, plus fleet totals."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud.sequence import SequenceTracker, SequenceWindow, Verdict

DEVICE = "01" + "ab" * 16


def test_first_number_may_be_anything() -> None:
    w = SequenceWindow()
    assert w.check_and_update(5_000_000) == Verdict(True, "new", 0)
    assert w.top == 5_000_000


def test_in_order_numbers_are_new_without_gaps() -> None:
    w = SequenceWindow()
    assert [w.check_and_update(s) for s in range(4)] == [Verdict(True, "new", 0)] * 4


def test_jump_ahead_reports_the_gap_and_late_arrival_fills_it() -> None:
    w = SequenceWindow()
    w.check_and_update(0)
    assert w.check_and_update(5) == Verdict(True, "new", 4)
    assert w.check_and_update(3) == Verdict(True, "reordered", 0)
    assert w.check_and_update(3) == Verdict(False, "duplicate", 0)


def test_duplicate_of_the_top_is_refused() -> None:
    w = SequenceWindow()
    w.check_and_update(7)
    assert w.check_and_update(7).reason == "duplicate"


def test_number_below_the_window_is_too_old() -> None:
    w = SequenceWindow(size=8)
    w.check_and_update(100)
    assert w.check_and_update(93).reason == "reordered"  # offset 7: the window's last slot
    assert w.check_and_update(92) == Verdict(False, "too_old", 0)  # offset 8: outside


def test_old_bits_slide_out_of_the_window() -> None:
    w = SequenceWindow(size=4)
    w.check_and_update(0)
    w.check_and_update(10)  # 0 is now far below the window
    assert w.check_and_update(0).reason == "too_old"
    assert w.check_and_update(7).reason == "reordered"


def test_refused_numbers_leave_the_window_unchanged() -> None:
    # RFC 4303 3.4.3: the window is updated only for a number that passes the check.
    w = SequenceWindow(size=16)
    for s in (10, 12, 11, 20):
        w.check_and_update(s)
    before = (w.top, w._mask)
    for s in (10, 11, 12, 20, 4, 0):
        assert not w.check_and_update(s).accepted
    assert (w.top, w._mask) == before
    assert w.check(13) == Verdict(True, "reordered", 0)
    assert (w.top, w._mask) == before  # check() alone never updates


def test_window_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="window size"):
        SequenceWindow(0)


def test_tracker_keeps_one_window_per_device_and_totals() -> None:
    other = "01" + "cd" * 16
    tr = SequenceTracker()
    for s in (0, 1, 5, 3, 3, 1):
        tr.check_and_update(DEVICE, s)
    tr.check_and_update(other, 3)  # another device's counter is independent
    assert len(tr) == 2
    assert tr.window(other) is not None and tr.window(other).top == 3  # type: ignore[union-attr]
    assert (tr.accepted, tr.duplicates, tr.too_old) == (5, 2, 0)
    assert (tr.gaps_opened, tr.gaps_filled) == (3, 1)  # 2, 3, 4 skipped; 3 arrived late


def test_tracker_counts_too_old() -> None:
    tr = SequenceTracker(size=4)
    tr.check_and_update(DEVICE, 100)
    tr.check_and_update(DEVICE, 1)
    assert tr.too_old == 1 and tr.accepted == 1


@given(st.data())
def test_any_permutation_with_duplicates_accepts_each_number_once(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 1024))
    base = data.draw(st.integers(0, 2**40))
    seqs = [base + i for i in range(n)]
    extra = data.draw(st.lists(st.sampled_from(seqs), max_size=50))
    order = data.draw(st.permutations(seqs + extra))
    w = SequenceWindow(1024)
    verdicts = [w.check_and_update(s) for s in order]
    assert sum(v.accepted for v in verdicts) == n
    assert sum(v.reason == "duplicate" for v in verdicts) == len(extra)
    assert w.top == base + n - 1
