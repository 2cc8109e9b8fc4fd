"""Battery drain against hand-computed charge (devices/battery.py)."""

from __future__ import annotations

import math

import pytest

from devices.battery import PROFILES, Battery, PowerProfile
from devices.errors import BatteryError, DeviceError
from twin.core.errors import MedtwinError
from twin.core.messages import Kind

ECG = PROFILES[Kind.ECG_PATCH]  # 225 mAh, 3.0 V, 450 uA, 0.3 mJ


def charge(b: Battery) -> float:
    return b.soc * b.profile.capacity_mah


def test_every_kind_has_a_profile() -> None:
    assert set(PROFILES) == set(Kind)


def test_full_battery_holds_its_capacity() -> None:
    b = Battery(ECG)
    assert b.soc == 1.0 and not b.empty
    assert charge(b) == pytest.approx(225.0)


def test_initial_soc_sets_charge() -> None:
    assert charge(Battery(ECG, 0.4)) == pytest.approx(90.0)


def test_base_current_for_an_hour() -> None:
    b = Battery(ECG)
    b.run_for(3600.0)  # 450 uA for 1 h = 0.45 mAh
    assert charge(b) == pytest.approx(225.0 - 0.45)


def test_base_current_for_a_window() -> None:
    b = Battery(PROFILES[Kind.BP_CUFF])  # 900 uA for 10 s = 0.9 * 10 / 3600 mAh
    b.run_for(10.0)
    assert charge(b) == pytest.approx(600.0 - 0.9 * 10 / 3600)


def test_one_transmission_costs_its_energy_at_cell_voltage() -> None:
    b = Battery(ECG)
    b.transmit()  # 0.3 mJ / 3.0 V = 0.1 mC = 0.1 / 3600 mAh
    assert charge(b) == pytest.approx(225.0 - 0.3 / 3.0 / 3600)


def test_transmit_many_is_many_times_one() -> None:
    b = Battery(ECG)
    b.transmit(1000)
    assert charge(b) == pytest.approx(225.0 - 1000 * 0.3 / 3.0 / 3600)


def test_spend_mj_uses_the_profile_voltage() -> None:
    b = Battery(PROFILES[Kind.BP_CUFF])  # 3.7 V
    b.spend_mj(37.0)  # 37 mJ / 3.7 V = 10 mC = 10 / 3600 mAh
    assert charge(b) == pytest.approx(600.0 - 10.0 / 3600)


def test_time_and_messages_add_up() -> None:
    b = Battery(ECG)
    for _ in range(360):  # an hour of 10-s windows, one message each
        b.run_for(10.0)
        b.transmit()
    assert charge(b) == pytest.approx(225.0 - 0.45 - 360 * 0.3 / 3.0 / 3600)


def test_hours_left_at_base_current() -> None:
    assert Battery(ECG).hours_left() == pytest.approx(225.0 / 0.45)
    assert Battery(ECG, 0.5).hours_left() == pytest.approx(250.0)


def test_hours_left_is_infinite_without_base_current() -> None:
    profile = PowerProfile(capacity_mah=100.0, voltage_v=3.0, base_ua=0.0, tx_mj=0.3)
    assert Battery(profile).hours_left() == math.inf


def test_soc_clamps_at_zero_and_reports_empty() -> None:
    b = Battery(ECG, 0.001)
    b.run_for(10 * 86400.0)
    assert b.soc == 0.0 and b.empty
    b.transmit(10)
    b.run_for(3600.0)
    assert b.soc == 0.0 and b.empty
    assert b.hours_left() == 0.0


def test_a_flat_cell_is_empty_from_the_start() -> None:
    assert Battery(ECG, 0.0).empty


def test_nearly_flat_is_not_empty() -> None:
    b = Battery(ECG, 1e-9)
    assert not b.empty and b.soc > 0


@pytest.mark.parametrize("soc", [-0.01, 1.0001, 2.0, math.nan, math.inf, -math.inf])
def test_soc_outside_unit_interval_raises(soc: float) -> None:
    with pytest.raises(BatteryError):
        Battery(ECG, soc)


@pytest.mark.parametrize(
    "fields",
    [
        {"capacity_mah": 0.0},
        {"capacity_mah": -1.0},
        {"voltage_v": 0.0},
        {"voltage_v": -3.0},
        {"base_ua": -1.0},
        {"tx_mj": -0.1},
        # NaN compares false with everything, so a min(...) <= 0 check lets it through.
        {"capacity_mah": math.nan},
        {"voltage_v": math.nan},
        {"base_ua": math.nan},
        {"tx_mj": math.nan},
    ],
    ids=lambda f: ",".join(f"{k}={v}" for k, v in f.items()),
)
def test_impossible_profile_raises(fields: dict[str, float]) -> None:
    good = {"capacity_mah": 225.0, "voltage_v": 3.0, "base_ua": 450.0, "tx_mj": 0.3}
    with pytest.raises(BatteryError):
        PowerProfile(**{**good, **fields})


def test_battery_error_is_in_the_tree() -> None:
    assert issubclass(BatteryError, DeviceError)
    assert issubclass(DeviceError, MedtwinError)
