"""Scenario schema and loader: bundled files load, every bad file is named precisely."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scenarios.attacks import ATTACKS, known_attacks
from twin.core.errors import MedtwinError
from twin.scenario import (
    Scenario,
    ScenarioError,
    bundled_scenarios,
    load_scenario,
    rescale_devices,
)

BAD = Path(__file__).parent / "bad_scenarios"
DEFENCES = ("replay_window", "topic_acl")


def load(source: str | Path, attacks: tuple[str, ...] = ()) -> Scenario:
    return load_scenario(source, known_defences=DEFENCES, known_attacks=attacks)


def problems(source: str | Path) -> tuple[str, ...]:
    with pytest.raises(ScenarioError) as caught:
        load(source)
    return caught.value.problems


def write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


MINIMAL = "name: tiny\nduration: 10m\nfleet:\n  devices: {ecg_patch: 2, bp_cuff: 1}\n"

# -- bundled scenarios ---------------------------------------------------------------------


def test_bundled_scenarios_are_listed_with_a_summary() -> None:
    listed = dict(bundled_scenarios())
    assert {"baseline", "outage"} <= set(listed)
    assert [name for name, _ in bundled_scenarios()] == sorted(listed)
    assert all(summary and "\n" not in summary for summary in listed.values())


@pytest.mark.parametrize("name", [name for name, _ in bundled_scenarios()])
def test_every_bundled_scenario_loads(name: str) -> None:
    scenario = load_scenario(name, known_defences=DEFENCES, known_attacks=known_attacks())
    assert scenario.name == name
    assert scenario.teaching.strip()
    assert scenario.window <= scenario.duration


def test_baseline_is_the_normal_ward() -> None:
    baseline = load("baseline")
    assert baseline.device_count() == 1000
    assert dict(baseline.fleet.devices) == {"ecg_patch": 400, "bp_cuff": 300, "sweat_patch": 300}
    assert (baseline.duration, baseline.window, baseline.seed) == (3600.0, 10.0, 20261126)
    assert baseline.attacks == [] and baseline.mode == "sim"
    assert all(baseline.defence_on(name) for name in DEFENCES)


def test_outage_takes_a_quarter_of_the_fleet_offline_for_a_minute() -> None:
    outage = load("outage")
    assert outage.device_count() == 300 and outage.duration == 1800.0
    assert outage.network.loss == 0.005
    (only,) = outage.network.outages
    assert (only.at, only.duration, only.fraction) == (600.0, 60.0, 0.25)


def test_a_path_loads_and_defaults_apply(tmp_path: Path) -> None:
    scenario = load(write(tmp_path, MINIMAL))
    assert scenario.device_count() == 3
    assert scenario.fleet.tenant == "ward-7" and scenario.fleet.cohort.age_max == 90
    assert scenario.network.latency.median == 0.04 and scenario.broker.kind == "simulated"
    assert scenario.window == 10.0 and scenario.outputs.store_telemetry


def test_scenario_is_frozen(tmp_path: Path) -> None:
    scenario = load(write(tmp_path, MINIMAL))
    with pytest.raises(ValueError):
        scenario.seed = 5  # type: ignore[misc]


def test_defences_default_on_and_can_be_switched_off(tmp_path: Path) -> None:
    scenario = load(write(tmp_path, MINIMAL + "defences: {topic_acl: false}\n"))
    assert not scenario.defence_on("topic_acl")
    assert scenario.defence_on("replay_window")


def test_a_known_attack_loads_with_its_parameters(tmp_path: Path) -> None:
    text = MINIMAL + "attacks:\n  - name: dos\n    at: 2m\n    params: {rate_per_s: 100}\n"
    scenario = load(write(tmp_path, text), attacks=("dos", "replay"))
    (attack,) = scenario.attacks
    assert (attack.name, attack.at, attack.params) == ("dos", 120.0, {"rate_per_s": 100})


def test_the_attack_registry_starts_empty() -> None:
    assert dict(ATTACKS) == {} and known_attacks() == ()


# -- bad files: one precise line per problem ------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("unknown_top_key", [":3: seeed: unknown key"]),
        (
            "unknown_nested_key",
            [
                ":6: fleet.devices.toaster: unknown key (expected 'ecg_patch', 'bp_cuff' or "
                "'sweat_patch')",
                ":8: fleet.cohort.agemax: unknown key",
            ],
        ),
        (
            "wrong_type",
            [
                ":3: seed: expected an integer (got 'abc')",
                ":6: fleet.devices.ecg_patch: expected an integer (got '12')",
            ],
        ),
        ("negative_duration", [":2: duration: negative duration '-5m'"]),
        ("unknown_attack", [":6: attacks.0.name: unknown attack 'dos' (known: none)"]),
        (
            "unknown_defence",
            [":7: defences.firewall: unknown defence 'firewall' (known: replay_window, topic_acl)"],
        ),
        ("empty_fleet", [":4: fleet.devices: the fleet is empty; give at least one device"]),
        ("negative_count", [":7: fleet.devices.ecg_patch: must be >= 0 (got -3)"]),
        (
            "outage_after_end",
            [
                ":9: network.outages.1.at: outage 1 starts at 15m, not before the end of the run "
                "(duration 10m)"
            ],
        ),
        ("window_too_long", [":3: window: window 10s is longer than the run (duration 5s)"]),
        (
            "missing_keys",
            [
                ":1: name: must match ^[a-z0-9][a-z0-9_-]{0,63}$ (got 'Not A Valid Name')",
                ": duration: missing (this key is required)",
                ":2: fleet.devices: missing (this key is required)",
            ],
        ),
        ("invalid_yaml", [":5:8: invalid YAML: expected ',' or '}', but got ':'"]),
        ("duplicate_key", [":6:1: invalid YAML: duplicate key 'seed'"]),
        ("not_mapping", [": the top level must be a mapping of keys (got a list)"]),
    ],
)
def test_bad_file_names_file_line_key_and_reason(name: str, expected: list[str]) -> None:
    path = BAD / f"{name}.yaml"
    found = problems(path)
    assert len(found) == len(expected), found
    for line, tail in zip(found, expected, strict=True):
        assert line.startswith(f"{path}{tail}"), line


def test_every_bad_fixture_is_exercised() -> None:
    source = Path(__file__).read_text(encoding="utf-8")
    for fixture in BAD.glob("*.yaml"):
        assert f'"{fixture.stem}"' in source, f"{fixture.name} has no test"


def test_scenario_error_is_a_medtwin_error_with_one_line_per_problem() -> None:
    with pytest.raises(MedtwinError) as caught:
        load(BAD / "unknown_nested_key.yaml")
    assert isinstance(caught.value, ScenarioError)
    assert str(caught.value).splitlines() == list(caught.value.problems)


def test_empty_file_is_not_a_mapping(tmp_path: Path) -> None:
    (line,) = problems(write(tmp_path, "# nothing here\n"))
    assert line.endswith("s.yaml: the top level must be a mapping of keys (got an empty file)")


def test_nan_is_not_a_number_of_anything(tmp_path: Path) -> None:
    text = MINIMAL + "network: {loss: .nan}\n"
    (line,) = problems(write(tmp_path, text))
    assert line.endswith(":5: network.loss: expected a finite number (got nan)")


def test_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    assert problems(path) == (f"{path}: no such file",)


def test_directory_is_refused(tmp_path: Path) -> None:
    assert problems(tmp_path) == (f"{tmp_path}: is a directory, not a scenario file",)


def test_unreadable_file_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Root (as in CI) reads a chmod-0 file, so the OS refusal is injected at the read itself.
    path = write(tmp_path, MINIMAL)

    def refuse(self: Path, *args: object, **kwargs: object) -> str:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_text", refuse)
    assert problems(path) == (f"{path}: cannot read the file (permission denied)",)


def test_non_utf8_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"name: caf\xe9\n")
    assert problems(path) == (f"{path}: not UTF-8 text (bad byte at offset 9)",)


def test_unknown_bundled_name_lists_the_bundled_ones() -> None:
    (line,) = problems("no-such-scenario")
    names = ", ".join(name for name, _ in bundled_scenarios())
    assert line == (
        "no-such-scenario: no such scenario file, and no bundled scenario of that name "
        f"(bundled: {names})"
    )


# -- overrides --------------------------------------------------------------------------------


def test_overrides_replace_and_revalidate() -> None:
    baseline = load("baseline")
    changed = baseline.with_overrides(devices=10, duration="2h", seed=7, mode="live")
    assert changed.device_count() == 10
    assert (changed.duration, changed.seed, changed.mode) == (7200.0, 7, "live")
    assert baseline.device_count() == 1000 and baseline.seed == 20261126
    assert baseline.with_overrides() == baseline


def test_devices_override_keeps_proportions() -> None:
    baseline = load("baseline")
    assert dict(baseline.with_overrides(devices=7).fleet.devices) == {
        "ecg_patch": 3,
        "bp_cuff": 2,
        "sweat_patch": 2,
    }
    assert dict(baseline.with_overrides(devices=10_000).fleet.devices) == {
        "ecg_patch": 4000,
        "bp_cuff": 3000,
        "sweat_patch": 3000,
    }


def test_rescale_ties_go_by_kind_order() -> None:
    even = {"sweat_patch": 1, "bp_cuff": 1, "ecg_patch": 1}
    assert rescale_devices(even, 2) == {"sweat_patch": 0, "bp_cuff": 1, "ecg_patch": 1}
    assert rescale_devices(even, 1) == {"sweat_patch": 0, "bp_cuff": 0, "ecg_patch": 1}


@given(
    st.dictionaries(
        st.sampled_from(["ecg_patch", "bp_cuff", "sweat_patch"]),
        st.integers(min_value=0, max_value=10**6),
        min_size=1,
    ).filter(lambda counts: sum(counts.values()) >= 1),
    st.integers(min_value=1, max_value=10**6),
)
def test_rescale_sums_exactly_and_stays_within_one_of_the_share(
    counts: dict[str, int], total: int
) -> None:
    rescaled = rescale_devices(counts, total)  # type: ignore[arg-type]
    assert sum(rescaled.values()) == total
    current = sum(counts.values())
    for kind, count in counts.items():
        share = total * count / current
        assert abs(rescaled[kind] - share) < 1
        if count == 0:
            assert rescaled[kind] == 0


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"devices": 0}, "outage (overrides): devices: must be an integer >= 1 (got 0)"),
        ({"duration": "-5m"}, "outage (overrides): duration: negative duration '-5m'"),
        (
            {"duration": "5m"},
            "outage (overrides): network.outages.0.at: outage 0 starts at 10m, not before the "
            "end of the run (duration 5m)",
        ),
        ({"seed": -1}, "outage (overrides): seed: must be >= 0 (got -1)"),
        ({"mode": "fast"}, "outage (overrides): mode: must be 'sim' or 'live' (got 'fast')"),
    ],
)
def test_bad_override_is_a_scenario_error(overrides: dict[str, object], expected: str) -> None:
    outage = load("outage")
    with pytest.raises(ScenarioError) as caught:
        outage.with_overrides(**overrides)  # type: ignore[arg-type]
    assert caught.value.problems == (expected,)


# -- physiology options ----------------------------------------------------------------------


def test_an_unknown_episode_kind_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("fleet:\n", "fleet:\n  cohort:\n"
                                           "    episode_rates: {af: 3, hiccups: 2}\n"))
    (line,) = problems(path)
    assert "fleet.cohort.episode_rates" in line and "unknown episode kind 'hiccups'" in line


def test_a_missing_replay_record_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("fleet:\n", "fleet:\n  replay: {record: nowhere/9}\n"))
    (line,) = problems(path)
    assert "fleet.replay.record" in line and "no WFDB file nowhere/9.hea" in line
