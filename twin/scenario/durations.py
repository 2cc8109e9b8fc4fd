"""Human durations for scenario files: ``90s``, ``15m``, ``1h30m``, ``500ms`` or bare seconds.

Scenario authors write durations the way people say them; the twin works in float seconds.
Parsing is exact (each component is read as a fraction and the total is rounded once), so
``parse_duration(format_duration(x)) == x`` for every millisecond-granular ``x``.

Units: ``ms`` (milliseconds), ``s``, ``m`` (minutes), ``h``, ``d``. A compound duration lists
each unit at most once, largest first (``1h30m``, not ``30m1h``), so a typo such as ``1m1m``
is refused instead of silently summed.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Annotated

from pydantic import BeforeValidator, Field

__all__ = ["Duration", "PositiveDuration", "format_duration", "parse_duration"]

# Milliseconds per unit, largest first: the order a compound duration must follow.
_UNIT_MS: dict[str, int] = {"d": 86_400_000, "h": 3_600_000, "m": 60_000, "s": 1_000, "ms": 1}
_NUMBER = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_BARE = re.compile(_NUMBER, re.ASCII)
_PART = re.compile(rf"\s*({_NUMBER})\s*(ms|[a-zA-Z]+)", re.ASCII)


def parse_duration(text: str | int | float) -> float:
    """Read a duration as float seconds.

    Args:
        text: ``"90s"``, ``"15m"``, ``"2h"``, ``"1d"``, ``"500ms"``, a compound such as
            ``"1h30m"``, a bare number of seconds as text (``"90"``), or an int/float of
            seconds (YAML gives ``duration: 90`` as an int).

    Returns:
        The duration in seconds, finite and >= 0.

    Raises:
        ValueError: naming the input, when it is empty, negative, NaN or infinite, has an
            unknown unit, repeats a unit or lists units out of order, or is not a str/number
            (bool is refused: ``true`` is a YAML slip, not one second).
    """
    if isinstance(text, bool) or not isinstance(text, str | int | float):
        raise ValueError(f"expected a duration such as '90s' or '1h30m' (got {_show(text)})")
    if isinstance(text, int | float):
        return _check_seconds(text, text)
    stripped = text.strip()
    if not stripped:
        raise ValueError(f"empty duration {_show(text)}; write e.g. '90s' or '1h30m'")
    if stripped.startswith("-"):
        raise ValueError(f"negative duration {_show(text)}")
    if _BARE.fullmatch(stripped):
        return _check_seconds(_to_float(Fraction(stripped), text), text)
    return _check_seconds(_to_float(_parse_compound(stripped, text) / 1000, text), text)


def _parse_compound(stripped: str, original: str) -> Fraction:
    """Sum the ``<number><unit>`` parts of ``stripped`` in exact milliseconds.

    Args:
        stripped: the input without surrounding whitespace.
        original: the input as given, for error messages.

    Returns:
        The total in milliseconds, exact.

    Raises:
        ValueError: on an unknown unit, a repeated or out-of-order unit, or stray text.
    """
    total = Fraction(0)
    pos = 0
    last_rank = -1
    ranks = list(_UNIT_MS)
    while pos < len(stripped):
        match = _PART.match(stripped, pos)
        if match is None:
            raise ValueError(
                f"invalid duration {_show(original)}: expected <number><unit> at "
                f"{_show(stripped[pos:])} (units: {', '.join(reversed(ranks))})"
            )
        number, unit = match.groups()
        if unit not in _UNIT_MS:
            raise ValueError(
                f"invalid duration {_show(original)}: unknown unit {unit!r} "
                f"(units: {', '.join(reversed(ranks))})"
            )
        rank = ranks.index(unit)
        if rank <= last_rank:
            raise ValueError(
                f"invalid duration {_show(original)}: units must appear once each, largest first "
                "(e.g. '1h30m')"
            )
        last_rank = rank
        total += Fraction(number) * _UNIT_MS[unit]
        pos = match.end()
    return total


def _show(value: object) -> str:
    """Quote an input for an error message, cut short so a pasted blob stays one line."""
    shown = repr(value)
    return shown if len(shown) <= 40 else shown[:37] + "..."


def _to_float(value: Fraction | int | float, original: object) -> float:
    """Round an exact value to float once, turning overflow into our error."""
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"duration {_show(original)} is too large") from None


def _check_seconds(seconds: float, original: object) -> float:
    """Refuse NaN, infinities and negatives; return ``seconds`` as a float."""
    value = _to_float(seconds, original)
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"duration must be a finite number of seconds (got {_show(original)})")
    if value < 0:
        raise ValueError(f"negative duration {_show(original)}")
    return value


def format_duration(seconds: float) -> str:
    """Write seconds the way a scenario file would, e.g. ``5400 -> "1h30m"``.

    Args:
        seconds: a finite, non-negative number of seconds. It is rounded to the nearest
            millisecond, the finest unit a scenario file can express.

    Returns:
        The shortest compound form, largest unit first: ``"1h30m"``, ``"250ms"``, ``"0s"``.

    Raises:
        ValueError: when ``seconds`` is negative, NaN or infinite (nothing sensible to write).
    """
    value = _check_seconds(seconds, seconds)
    remaining = round(Fraction(value) * 1000)
    if remaining == 0:
        return "0s"
    parts = []
    for unit, unit_ms in _UNIT_MS.items():
        count, remaining = divmod(remaining, unit_ms)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""A duration field: accepts ``"90s"``, ``"1h30m"``, numbers of seconds; stores float seconds."""

PositiveDuration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]
"""A duration that must be longer than zero (a run length, a window, an outage)."""
