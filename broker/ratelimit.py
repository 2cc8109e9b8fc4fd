"""Per-identity rate limits: token buckets keyed by the certificate's principal. Pure.

A flooding device (PSA goal 8, "resilience": availability of the service to the rest of the
fleet) must not starve the others. Every principal gets its own bucket for messages and one
for connection attempts; time is a parameter (``now``, seconds on any monotonic clock) so the
simulated broker can use the same limiter in virtual time.

Over the message limit a publish is **dropped** (never routed, counted); after
``cut_after`` drops in a row the session is **cut** (the caller disconnects it). A device
that only bursts a little above its rate is thereby throttled to the rate, while one that
floods is disconnected; reconnecting does not refill its bucket, because the bucket belongs
to the identity, not the connection.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from broker.policy import Principal


@dataclass(slots=True)
class TokenBucket:
    """A token bucket: ``rate`` tokens a second, at most ``burst`` stored.

    Args:
        rate: refill rate, tokens per second (> 0).
        burst: capacity, and the initial fill.
    """

    rate: float
    burst: float
    tokens: float = -1.0
    stamp: float | None = None

    def __post_init__(self) -> None:
        if not self.rate > 0 or not self.burst >= 1:
            raise ValueError("a token bucket needs rate > 0 and burst >= 1")
        if self.tokens < 0:
            self.tokens = self.burst

    def take(self, now: float) -> bool:
        """Take one token at ``now`` if there is one.

        Returns:
            True if the action is within the limit (a token was taken).
        """
        if self.stamp is not None and now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now if self.stamp is None else max(self.stamp, now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclass(frozen=True, slots=True)
class RateLimits:
    """The configured limits, the same for every identity of a role.

    Attributes:
        messages_per_s: sustained PUBLISH rate per identity.
        message_burst: PUBLISHes allowed back to back.
        cut_after: consecutive over-limit PUBLISHes after which the session is cut.
        connects_per_min: sustained CONNECT rate per identity.
        connect_burst: CONNECTs allowed back to back (reconnect storms after an outage).
    """

    messages_per_s: float = 50.0
    message_burst: float = 100.0
    cut_after: int = 100
    connects_per_min: float = 30.0
    connect_burst: float = 10.0

    def __post_init__(self) -> None:
        if not (self.messages_per_s > 0 and self.message_burst >= 1 and self.cut_after >= 1
                and self.connects_per_min > 0 and self.connect_burst >= 1):
            raise ValueError("rate limits must be positive (bursts and cut_after at least 1)")


class Verdict(enum.Enum):
    """What to do with one PUBLISH."""

    PASS = "pass"
    DROP = "drop"
    CUT = "cut"


@dataclass
class RateLimiter:
    """Token buckets per principal.

    Args:
        limits: the limits to apply (the cloud is limited too, in its own buckets).
    """

    limits: RateLimits = field(default_factory=RateLimits)
    _messages: dict[Principal, TokenBucket] = field(default_factory=dict)
    _connects: dict[Principal, TokenBucket] = field(default_factory=dict)
    _strikes: dict[Principal, int] = field(default_factory=dict)
    dropped: int = 0
    cut: int = 0
    refused_connects: int = 0

    def message(self, who: Principal, now: float) -> Verdict:
        """Account one PUBLISH by ``who`` at ``now``.

        Returns:
            PASS within the limit; DROP over it; CUT when ``cut_after`` PUBLISHes in a row
            were over it (the caller must disconnect the session).
        """
        bucket = self._messages.get(who)
        if bucket is None:
            bucket = self._messages[who] = TokenBucket(self.limits.messages_per_s,
                                                       self.limits.message_burst)
        if bucket.take(now):
            self._strikes.pop(who, None)
            return Verdict.PASS
        self.dropped += 1
        strikes = self._strikes.get(who, 0) + 1
        if strikes >= self.limits.cut_after:
            self._strikes.pop(who, None)
            self.cut += 1
            return Verdict.CUT
        self._strikes[who] = strikes
        return Verdict.DROP

    def connect(self, who: Principal, now: float) -> bool:
        """Account one CONNECT by ``who`` at ``now``.

        Returns:
            True within the limit; False if the identity reconnects too fast.
        """
        bucket = self._connects.get(who)
        if bucket is None:
            bucket = self._connects[who] = TokenBucket(self.limits.connects_per_min / 60.0,
                                                       self.limits.connect_burst)
        if bucket.take(now):
            return True
        self.refused_connects += 1
        return False
