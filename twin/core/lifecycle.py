"""Lifecycles as transition tables (house style 2).

A lifecycle is data: a table from ``(state, event)`` to the next state. Code asks the table and
gets either the next state or a :class:`~twin.core.errors.TransitionError`; it never encodes
the rules in ``if`` chains. This is h11's approach to connection states, and it keeps the
device, certificate, firmware-update and provisioning lifecycles reviewable at a glance.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Generic, TypeVar

from twin.core.errors import TransitionError

S = TypeVar("S", bound=Enum)
E = TypeVar("E", bound=Enum)


@dataclass(frozen=True)
class TransitionTable(Generic[S, E]):
    """An immutable transition table for one lifecycle.

    Attributes:
        name: the lifecycle's name, used in error messages.
        table: ``(state, event) -> next state``.
    """

    name: str
    table: Mapping[tuple[S, E], S]
    _by_state: Mapping[S, tuple[E, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_state: dict[S, list[E]] = {}
        for state, event in self.table:
            by_state.setdefault(state, []).append(event)
        object.__setattr__(self, "_by_state", {s: tuple(e) for s, e in by_state.items()})

    @classmethod
    def build(
        cls, name: str, rows: Iterable[tuple[S | tuple[S, ...], E, S]]
    ) -> TransitionTable[S, E]:
        """Build a table from rows ``(from_state(s), event, to_state)``.

        Args:
            name: the lifecycle's name.
            rows: each row gives one source state, or a tuple of states that share it.

        Returns:
            The table.

        Raises:
            ValueError: if two rows give the same ``(state, event)`` different targets, since an
                ambiguous table is a design bug, not a runtime condition.
        """
        table: dict[tuple[S, E], S] = {}
        for sources, event, target in rows:
            for source in sources if isinstance(sources, tuple) else (sources,):
                key = (source, event)
                if key in table and table[key] is not target:
                    raise ValueError(f"{name}: ({source}, {event}) has two targets")
                table[key] = target
        return cls(name, table)

    def next(self, state: S, event: E) -> S:
        """Return the state that ``event`` leads to from ``state``.

        Raises:
            TransitionError: if the table has no such transition.
        """
        try:
            return self.table[(state, event)]
        except KeyError:
            raise TransitionError(self.name, state, event) from None

    def allows(self, state: S, event: E) -> bool:
        """Whether ``event`` is allowed in ``state`` (for callers that branch, not fire)."""
        return (state, event) in self.table

    def events_from(self, state: S) -> tuple[E, ...]:
        """The events allowed in ``state``, in table order (for docs and the dashboard)."""
        return self._by_state.get(state, ())
