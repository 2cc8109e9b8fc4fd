"""Per-device anti-replay and de-duplication windows, after RFC 4303 section 3.4.3.

Every device numbers each message it sends (telemetry and events share one counter,
:class:`twin.core.messages.Telemetry`). The cloud keeps, per device, the highest sequence number
it has accepted (the window's right edge) and a bitmask of which of the ``size`` numbers at and
below it have been seen: bit ``i`` set means ``top - i`` arrived. That is the IPsec receiver's
sliding window, with a Python ``int`` as the bitmap, so a window of 1,024 costs one small int.

For a sequence number ``seq`` (RFC 4303 3.4.3, "Sequence Number Verification"):

* ``seq > top``: new; the window slides right; ``seq - top - 1`` numbers were skipped (a gap);
* ``top - size < seq <= top`` and its bit is clear: accepted late (reordered, fills a gap);
* its bit is set: duplicate, refused;
* ``seq <= top - size``: too old to judge, refused.

As RFC 4303 requires ("the receive window is updated only if the integrity verification
succeeds"), :meth:`SequenceWindow.check` never changes state; only an accepted number does,
through :meth:`SequenceWindow.check_and_update`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

DEFAULT_WINDOW: Final = 1024

Reason = Literal["new", "reordered", "duplicate", "too_old"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of checking one sequence number.

    Attributes:
        accepted: whether the message should be processed.
        reason: ``"new"`` (advanced the window), ``"reordered"`` (late but unseen),
            ``"duplicate"`` or ``"too_old"`` (both refused).
        gap: how many sequence numbers were skipped when ``seq`` jumped ahead (0 otherwise).
    """

    accepted: bool
    reason: Reason
    gap: int = 0


_NEW: Final = Verdict(True, "new")
_REORDERED: Final = Verdict(True, "reordered")
_DUPLICATE: Final = Verdict(False, "duplicate")
_TOO_OLD: Final = Verdict(False, "too_old")


class SequenceWindow:
    """One device's sliding receive window.

    The first number a window sees may be anything: devices persist their counter across
    reboots (as an IPsec SA's counter never resets without a re-key), so a device the cloud
    first hears from mid-life, or after a cloud restart, starts wherever its counter is. A
    device that *reset* its counter would be refused as ``too_old``/``duplicate`` until it
    passed its old high-water mark; that is the replay defence working, not a bug.
    """

    __slots__ = ("_full", "_mask", "_size", "_top")

    def __init__(self, size: int = DEFAULT_WINDOW) -> None:
        """Create an empty window.

        Args:
            size: how many sequence numbers at and below the highest seen are remembered.

        Raises:
            ValueError: if ``size`` < 1 (a window that remembers nothing cannot de-duplicate).
        """
        if size < 1:
            raise ValueError(f"window size must be >= 1, got {size}")
        self._size = size
        self._full = (1 << size) - 1
        self._top: int | None = None
        self._mask = 0

    @property
    def top(self) -> int | None:
        """The highest sequence number accepted so far, or None before the first."""
        return self._top

    def check(self, seq: int) -> Verdict:
        """Judge ``seq`` without changing the window (RFC 4303 3.4.3: verify before update).

        Args:
            seq: the message's sequence number (the codec guarantees 0..2**63-1).

        Returns:
            The verdict; ``gap`` is set only for a number that advances the window.
        """
        top = self._top
        if top is None:
            return _NEW
        if seq > top:
            return _NEW if seq == top + 1 else Verdict(True, "new", seq - top - 1)
        offset = top - seq
        if offset >= self._size:
            return _TOO_OLD
        if (self._mask >> offset) & 1:
            return _DUPLICATE
        return _REORDERED

    def check_and_update(self, seq: int) -> Verdict:
        """Judge ``seq`` and, only if it is accepted, record it in the window.

        Args:
            seq: the message's sequence number.

        Returns:
            The verdict (see :meth:`check`). A refused number leaves the window unchanged.
        """
        verdict = self.check(seq)
        if not verdict.accepted:
            return verdict
        top = self._top
        if top is None:
            self._top, self._mask = seq, 1
        elif seq > top:
            # Slide right: the old bits move up by the distance; bits past the window drop off.
            self._mask = ((self._mask << (seq - top)) | 1) & self._full
            self._top = seq
        else:
            self._mask |= 1 << (top - seq)
        return verdict


class SequenceTracker:
    """One :class:`SequenceWindow` per device, with fleet-wide totals.

    Attributes:
        accepted: numbers accepted (new or reordered).
        duplicates: numbers refused because they were already seen.
        too_old: numbers refused because they fell below the window.
        gaps_opened: sequence numbers skipped when a device's numbers jumped ahead.
        gaps_filled: late arrivals that filled one of those gaps. ``gaps_opened -
            gaps_filled`` is the number of messages still missing (lost or not yet arrived).
    """

    __slots__ = ("_size", "_windows", "accepted", "duplicates", "gaps_filled", "gaps_opened",
                 "too_old")

    def __init__(self, size: int = DEFAULT_WINDOW) -> None:
        """Create a tracker whose windows remember ``size`` numbers each.

        Raises:
            ValueError: if ``size`` < 1.
        """
        if size < 1:
            raise ValueError(f"window size must be >= 1, got {size}")
        self._size = size
        self._windows: dict[str, SequenceWindow] = {}
        self.accepted = 0
        self.duplicates = 0
        self.too_old = 0
        self.gaps_opened = 0
        self.gaps_filled = 0

    def __len__(self) -> int:
        return len(self._windows)

    def window(self, device: str) -> SequenceWindow | None:
        """The window for ``device``, or None if nothing was accepted from it yet."""
        return self._windows.get(device)

    def check_and_update(self, device: str, seq: int) -> Verdict:
        """Judge ``seq`` for ``device``, record it if accepted, and update the totals.

        Args:
            device: the device's UEID hex (already checked against the topic by the caller).
            seq: the message's sequence number.

        Returns:
            The verdict of the device's window.
        """
        window = self._windows.get(device)
        if window is None:
            window = self._windows[device] = SequenceWindow(self._size)
        verdict = window.check_and_update(seq)
        if verdict.accepted:
            self.accepted += 1
            self.gaps_opened += verdict.gap
            if verdict.reason == "reordered":
                self.gaps_filled += 1
        elif verdict.reason == "duplicate":
            self.duplicates += 1
        else:
            self.too_old += 1
        return verdict
