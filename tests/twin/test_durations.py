"""Durations: the examples scenario authors write, the errors, and two Hypothesis properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from twin.scenario.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90.0),
        ("15m", 900.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("500ms", 0.5),
        ("1h30m", 5400.0),
        ("1d2h3m4s5ms", 93784.005),
        (" 1h 30m ", 5400.0),
        ("1.5h", 5400.0),
        (".5s", 0.5),
        ("90", 90.0),
        ("0", 0.0),
        (90, 90.0),
        (0.25, 0.25),
    ],
)
def test_parses_what_people_write(text: str | int | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("-5m", "negative duration '-5m'"),
        (-1, "negative duration -1"),
        ("", "empty duration ''"),
        ("   ", "empty duration '   '"),
        ("5min", "unknown unit 'min'"),
        ("1x", "unknown unit 'x'"),
        ("1h30", "'1h30'"),
        ("30m1h", "largest first"),
        ("1m1m", "largest first"),
        ("nan", "'nan'"),
        ("inf", "'inf'"),
        (math.nan, "finite"),
        (math.inf, "finite"),
        (True, "True"),
        ("9" * 400 + "d", "too large"),
    ],
)
def test_refuses_with_the_input_named(text: str | int | float, fragment: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_duration(text)
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(5400, "1h30m"), (0.25, "250ms"), (0, "0s"), (90, "1m30s"), (86401.5, "1d1s500ms")],
)
def test_formats_largest_unit_first(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("seconds", [-1.0, math.nan, math.inf])
def test_format_refuses_what_cannot_be_written(seconds: float) -> None:
    with pytest.raises(ValueError):
        format_duration(seconds)


@given(st.integers(min_value=0, max_value=10**13))
def test_format_then_parse_round_trips_milliseconds(milliseconds: int) -> None:
    seconds = milliseconds / 1000
    assert parse_duration(format_duration(seconds)) == seconds


@given(st.text())
def test_arbitrary_text_parses_or_raises_value_error(text: str) -> None:
    try:
        seconds = parse_duration(text)
    except ValueError:
        return
    assert isinstance(seconds, float)
    assert math.isfinite(seconds)
    assert seconds >= 0


@given(st.from_regex(r"\A\s*([0-9]{1,4}(\.[0-9]{0,3})?(d|h|m|s|ms)\s*){1,5}\Z"))
def test_duration_shaped_text_parses_or_raises_value_error(text: str) -> None:
    try:
        seconds = parse_duration(text)
    except ValueError:
        return
    assert math.isfinite(seconds)
    assert seconds >= 0
