"""Threshold alert rules with hysteresis: one alert per excursion, never an alert storm.

A rule watches one metric. When a device's value leaves the rule's range the engine raises an
alert once; it stays active while the value hovers near the limit and is cleared only when the
value is back inside the range by at least ``clear_margin`` (hysteresis, as bedside monitors
do to avoid alarm fatigue: Joint Commission Sentinel Event Alert 50, 2013). The engine keeps
only the set of active (device, rule) pairs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from twin.core.messages import METRICS

Severity = Literal["warning", "critical"]
AlertState = Literal["raised", "cleared"]


@dataclass(frozen=True, slots=True)
class AlertRule:
    """A range a metric should stay within.

    Attributes:
        name: stable rule name (``"tachycardia"``), the key of alert state and reports.
        metric: a metric name from :data:`twin.core.messages.METRICS`.
        low: breach below this value (None: no lower limit).
        high: breach above this value (None: no upper limit).
        clear_margin: how far back inside the range a value must come to clear (>= 0).
        severity: ``"warning"`` or ``"critical"``.
        inclusive: whether a value equal to a limit is already a breach (for guideline limits
            stated as ">= 180").
    """

    name: str
    metric: str
    low: float | None
    high: float | None
    clear_margin: float
    severity: Severity
    inclusive: bool = False

    def __post_init__(self) -> None:
        # Rules may come from scenario files: refuse nonsense at construction, naming the rule.
        if self.metric not in METRICS:
            raise ValueError(f"alert rule {self.name!r}: unknown metric {self.metric!r}")
        if self.low is None and self.high is None:
            raise ValueError(f"alert rule {self.name!r}: needs a low or a high limit")
        if self.clear_margin < 0:
            raise ValueError(f"alert rule {self.name!r}: clear_margin must be >= 0")
        if self.severity not in ("warning", "critical"):
            raise ValueError(f"alert rule {self.name!r}: severity must be warning or critical")

    def breached(self, value: float) -> bool:
        """Whether ``value`` is outside the range (a raise condition)."""
        if self.inclusive:
            return (self.low is not None and value <= self.low) or (
                self.high is not None and value >= self.high
            )
        return (self.low is not None and value < self.low) or (
            self.high is not None and value > self.high
        )

    def cleared(self, value: float) -> bool:
        """Whether ``value`` is back inside the range by at least ``clear_margin``."""
        m = self.clear_margin
        return (self.low is None or value >= self.low + m) and (
            self.high is None or value <= self.high - m
        )


DEFAULT_RULES: tuple[AlertRule, ...] = (
    # NEWS2 (Royal College of Physicians, 2017): pulse >= 131/min scores 3, the top band.
    AlertRule("tachycardia", "hr_bpm", None, 130.0, 5.0, "warning"),
    # NEWS2 (RCP 2017): pulse <= 40/min scores 3; below 40 is the conventional severe bradycardia.
    AlertRule("bradycardia", "hr_bpm", 40.0, None, 5.0, "critical"),
    # 2017 ACC/AHA Hypertension Guideline (Whelton et al., Hypertension 2018;71:e13), 11.2:
    # hypertensive crisis at SBP > 180 and/or DBP > 120 mmHg; the project alerts at the limit
    # itself (>=), erring towards a check rather than a miss.
    AlertRule("hypertensive_urgency_sys", "sys_mmhg", None, 180.0, 10.0, "critical", True),
    AlertRule("hypertensive_urgency_dia", "dia_mmhg", None, 120.0, 10.0, "critical", True),
    # SBP < 90 mmHg is the conventional hypotension limit (Surviving Sepsis Campaign 2021;
    # NEWS2 scores SBP <= 90 as 3).
    AlertRule("hypotension", "sys_mmhg", 90.0, None, 5.0, "critical"),
    # Whole-body sweat [Na+] in athletes spans about 10-90 mmol/L (Baker, Sports Med
    # 2017;47 Suppl 1:111-128); above it suggests a "salty sweater" or a faulty sensor.
    AlertRule("high_sweat_sodium", "na_mmol_l", None, 90.0, 5.0, "warning"),
)
"""The default clinical rules; sources are cited beside each rule."""


@dataclass(frozen=True, slots=True)
class Alert:
    """An alert raised or cleared for one device.

    Attributes:
        device: the device's UEID hex.
        t: when the cloud raised or cleared it (its receive time, not the window time a
            device claims, which a peer controls).
        rule: the rule's name.
        metric: the metric the rule watches.
        value: the value that raised or cleared it.
        state: ``"raised"`` or ``"cleared"``.
        severity: the rule's severity.
    """

    device: str
    t: float
    rule: str
    metric: str
    value: float
    state: AlertState
    severity: Severity


class AlertEngine:
    """Applies rules to each device's values and remembers which alerts are active."""

    def __init__(self, rules: Iterable[AlertRule] = DEFAULT_RULES) -> None:
        """Index the rules by metric.

        Args:
            rules: the rules to apply; names must be unique.

        Raises:
            ValueError: if two rules share a name (their alert state would be confused).
        """
        self.rules = tuple(rules)
        names = [r.name for r in self.rules]
        if len(set(names)) != len(names):
            raise ValueError(f"alert rule names must be unique: {sorted(names)}")
        self._by_metric: dict[str, list[AlertRule]] = {}
        for rule in self.rules:
            self._by_metric.setdefault(rule.metric, []).append(rule)
        self._active: dict[str, set[str]] = {}

    def active(self, device: str) -> frozenset[str]:
        """The names of the rules currently raised for ``device``."""
        return frozenset(self._active.get(device, ()))

    def observe(self, device: str, t: float, values: Mapping[str, float]) -> list[Alert]:
        """Feed one window of values; return the alerts that changed state.

        Args:
            device: the device's UEID hex.
            t: the time to stamp on alerts (the cloud's ``now``).
            values: metric name -> value; metrics without rules are ignored.

        Returns:
            A ``"raised"`` alert for each rule newly breached and a ``"cleared"`` alert for
            each active rule whose value came back inside by its margin; empty otherwise.
        """
        out: list[Alert] = []
        active = self._active.get(device)
        for metric, value in values.items():
            for rule in self._by_metric.get(metric, ()):
                if active is not None and rule.name in active:
                    if rule.cleared(value):
                        active.discard(rule.name)
                        out.append(Alert(device, t, rule.name, metric, value, "cleared",
                                         rule.severity))
                elif rule.breached(value):
                    if active is None:
                        active = self._active[device] = set()
                    active.add(rule.name)
                    out.append(Alert(device, t, rule.name, metric, value, "raised", rule.severity))
        return out
