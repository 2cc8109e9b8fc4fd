"""Threshold alerts with hysteresis: one raise per excursion, clear only past the margin."""

from __future__ import annotations

import pytest

from cloud.alerts import DEFAULT_RULES, Alert, AlertEngine, AlertRule

DEV = "01" + "11" * 16


def _states(engine: AlertEngine, metric: str, values: list[float]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for i, v in enumerate(values):
        out += [(a.rule, a.state) for a in engine.observe(DEV, float(i), {metric: v})]
    return out


def test_one_raise_per_excursion_and_clear_with_margin() -> None:
    engine = AlertEngine(DEFAULT_RULES)
    # 131 raises; hovering around 130 neither re-raises nor clears; 125 (130 - 5) clears.
    hr = [100.0, 131.0, 140.0, 129.0, 132.0, 126.0, 125.0, 135.0]
    assert _states(engine, "hr_bpm", hr) == [
        ("tachycardia", "raised"), ("tachycardia", "cleared"), ("tachycardia", "raised")]


def test_low_limit_rule_clears_above_low_plus_margin() -> None:
    engine = AlertEngine(DEFAULT_RULES)
    assert _states(engine, "hr_bpm", [60.0, 39.0, 42.0, 44.9, 45.0, 38.0]) == [
        ("bradycardia", "raised"), ("bradycardia", "cleared"), ("bradycardia", "raised")]


def test_inclusive_limits_for_guideline_thresholds() -> None:
    engine = AlertEngine(DEFAULT_RULES)
    alerts = engine.observe(DEV, 3.0, {"sys_mmhg": 180.0, "dia_mmhg": 120.0})
    assert alerts == [
        Alert(DEV, 3.0, "hypertensive_urgency_sys", "sys_mmhg", 180.0, "raised", "critical"),
        Alert(DEV, 3.0, "hypertensive_urgency_dia", "dia_mmhg", 120.0, "raised", "critical"),
    ]
    assert engine.active(DEV) == {"hypertensive_urgency_sys", "hypertensive_urgency_dia"}


def test_strict_limits_do_not_fire_on_the_limit() -> None:
    engine = AlertEngine(DEFAULT_RULES)
    assert engine.observe(DEV, 0.0, {"hr_bpm": 130.0, "na_mmol_l": 90.0, "sys_mmhg": 90.0}) == []


def test_devices_have_independent_state() -> None:
    engine = AlertEngine(DEFAULT_RULES)
    other = "01" + "22" * 16
    assert len(engine.observe(DEV, 0.0, {"na_mmol_l": 95.0})) == 1
    assert len(engine.observe(other, 0.0, {"na_mmol_l": 95.0})) == 1
    assert engine.observe(DEV, 1.0, {"na_mmol_l": 95.0}) == []
    assert engine.active(other) == {"high_sweat_sodium"}


def test_metrics_without_rules_are_ignored() -> None:
    assert AlertEngine(DEFAULT_RULES).observe(DEV, 0.0, {"k_mmol_l": 99.0}) == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"metric": "nope"}, "unknown metric"),
        ({"low": None, "high": None}, "low or a high"),
        ({"clear_margin": -1.0}, "clear_margin"),
        ({"severity": "meh"}, "severity"),
    ],
)
def test_bad_rules_are_refused(kwargs: dict[str, object], match: str) -> None:
    base: dict[str, object] = {"name": "r", "metric": "hr_bpm", "low": None, "high": 1.0,
                               "clear_margin": 0.0, "severity": "warning"}
    with pytest.raises(ValueError, match=match):
        AlertRule(**{**base, **kwargs})  # type: ignore[arg-type]


def test_duplicate_rule_names_are_refused() -> None:
    with pytest.raises(ValueError, match="unique"):
        AlertEngine([DEFAULT_RULES[0], DEFAULT_RULES[0]])
