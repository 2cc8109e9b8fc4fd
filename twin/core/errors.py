"""The exception tree of the shared contract.

Every error the project raises on purpose derives from :class:`MedtwinError`, so a driver or
the CLI can tell "bad input we understood" from a bug. The tree::

    MedtwinError
    ├── DecodeError        bytes that are not a valid message (codec)
    ├── TopicError         a topic or filter that breaks the grammar (MQTT-4.7)
    ├── IdentityError      a malformed device identity (UEID / certificate URI)
    ├── TransitionError    an event a lifecycle does not allow in its current state
    └── (per package)      devices.errors, cloud.errors, broker.policy, twin.scenario ...

Security checks raise a subclass and never return False (house style, section 6).
"""

from __future__ import annotations


class MedtwinError(Exception):
    """Base of every error the project raises deliberately."""


def brief(value: object, limit: int = 32) -> str:
    """Show a peer's value in an error message without rendering all of it.

    ``repr`` of a peer's value is unsafe in an error path: a 5,000-digit integer makes Python
    raise ValueError, and a shared-reference structure can be exponentially large. Strings are
    cut before ``repr``; numbers are shown when short; anything else by its type name.
    """
    if type(value) is str:
        return repr(value[:limit]) + ("..." if len(value) > limit else "")
    if type(value) is int and abs(value) >= 10**18:
        return "<huge int>"
    if type(value) in (int, float, bool) or value is None:
        return repr(value)[:limit]
    return f"<{type(value).__name__}>"


class DecodeError(MedtwinError):
    """A payload could not be decoded into a valid message.

    The message names what was wrong (field and reason) but never echoes more than a short
    prefix of the peer's bytes.
    """


class TopicError(MedtwinError):
    """A topic name or topic filter is malformed or outside the project's grammar."""


class IdentityError(MedtwinError):
    """A device identity (UEID, device URI) is malformed."""


class TransitionError(MedtwinError):
    """A lifecycle was asked to take an event its transition table does not allow.

    Attributes:
        machine: name of the lifecycle (e.g. ``"wearable"``).
        state: the state it was in.
        event: the event that was refused.
    """

    def __init__(self, machine: str, state: object, event: object) -> None:
        super().__init__(f"{machine}: event {event!s} is not allowed in state {state!s}")
        self.machine = machine
        self.state = state
        self.event = event
