"""Scenario files: the schema (frozen pydantic models), durations, and the loader.

Public API::

    load_scenario(source, *, known_defences, known_attacks) -> Scenario
    bundled_scenarios() -> [(name, summary)]
    Scenario.with_overrides(devices=, duration=, seed=, mode=) -> Scenario
    parse_duration(text) -> seconds, format_duration(seconds) -> text
    ScenarioError  (a MedtwinError; one line per problem in ``.problems``)
"""

from twin.scenario.durations import Duration, PositiveDuration, format_duration, parse_duration
from twin.scenario.loader import (
    ScenarioError,
    bundled_scenarios,
    describe_validation_error,
    load_scenario,
)
from twin.scenario.schema import (
    DEVICE_KINDS,
    Attack,
    Broker,
    Cohort,
    DeviceKind,
    Fleet,
    Latency,
    Network,
    Outage,
    Outputs,
    Scenario,
    rescale_devices,
)

__all__ = [
    "DEVICE_KINDS",
    "Attack",
    "Broker",
    "Cohort",
    "DeviceKind",
    "Duration",
    "Fleet",
    "Latency",
    "Network",
    "Outage",
    "Outputs",
    "PositiveDuration",
    "Scenario",
    "ScenarioError",
    "bundled_scenarios",
    "describe_validation_error",
    "format_duration",
    "load_scenario",
    "parse_duration",
    "rescale_devices",
]
