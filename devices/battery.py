"""Battery and energy model of a wearable.

Charge is tracked in millicoulombs-equivalent (mAh) and drained by two terms:

* a **base current** while powered (sensor front end, MCU and radio idle), as the average
  current over a window: ``I_base * dt``;
* an **energy cost per transmitted message** (radio on, TLS record, MQTT PUBLISH and PUBACK),
  converted to charge at the nominal cell voltage.

The profiles are order-of-magnitude figures for the device classes, not a specific product:
a CR2032-class coin cell holds about 225 mAh at 3.0 V; a single-lead ECG patch averages a few
hundred microamps with its analogue front end always on and a BLE link to a gateway; a cuff
spends most of its energy on the pump (about 2 mAh per inflation, averaged here); a
sweat-sensing patch is dominated by its electrochemical front end. A Bluetooth Low Energy
notification costs tens of microjoules; a message relayed as a TLS-protected MQTT publish
through a gateway is budgeted at 0.3 mJ including retries. Later issues (TinyML energy, OTA)
add their own terms through :meth:`Battery.spend_mj`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from devices.errors import BatteryError
from twin.core.messages import Kind

_SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class PowerProfile:
    """The power budget of a device class.

    Attributes:
        capacity_mah: usable cell capacity.
        voltage_v: nominal cell voltage (converts energy to charge).
        base_ua: average current while powered, microamps.
        tx_mj: energy per transmitted message, millijoules.
    """

    capacity_mah: float
    voltage_v: float
    base_ua: float
    tx_mj: float

    def __post_init__(self) -> None:
        positive = (self.capacity_mah, self.voltage_v)
        non_negative = (self.base_ua, self.tx_mj)
        # Written as "not (x > 0)" so NaN fails too.
        if not all(x > 0 for x in positive) or not all(x >= 0 for x in non_negative) or not all(
            math.isfinite(x) for x in (*positive, *non_negative)
        ):
            raise BatteryError(f"impossible power profile: {self}")


PROFILES: Mapping[Kind, PowerProfile] = {
    Kind.ECG_PATCH: PowerProfile(capacity_mah=225.0, voltage_v=3.0, base_ua=450.0, tx_mj=0.3),
    Kind.BP_CUFF: PowerProfile(capacity_mah=600.0, voltage_v=3.7, base_ua=900.0, tx_mj=0.3),
    Kind.SWEAT_PATCH: PowerProfile(capacity_mah=120.0, voltage_v=3.0, base_ua=250.0, tx_mj=0.3),
}
"""Default profiles per kind (see the module docstring for where the figures come from)."""


class Battery:
    """A cell's remaining charge, drained by time and by messages.

    Args:
        profile: the device class's power profile.
        soc: initial state of charge, 0..1 (wearables start a shift at various charges).

    Raises:
        BatteryError: for a state of charge outside 0..1.
    """

    __slots__ = ("_charge_mah", "profile")

    def __init__(self, profile: PowerProfile, soc: float = 1.0) -> None:
        if not 0.0 <= soc <= 1.0:
            raise BatteryError(f"state of charge must be within 0..1, got {soc}")
        self.profile = profile
        self._charge_mah = profile.capacity_mah * soc

    @property
    def soc(self) -> float:
        """State of charge, 0..1."""
        return self._charge_mah / self.profile.capacity_mah

    @property
    def empty(self) -> bool:
        """Whether the cell is flat."""
        return self._charge_mah <= 0.0

    def run_for(self, seconds: float) -> None:
        """Drain the base current for ``seconds`` of powered time.

        Raises:
            BatteryError: for negative time (a battery is not charged by running backwards).
        """
        self._drain(self.profile.base_ua * 1e-3 * seconds / _SECONDS_PER_HOUR)

    def spend_mj(self, millijoules: float) -> None:
        """Drain an energy cost (a transmission, an inference, a flash write).

        Raises:
            BatteryError: for a negative cost.
        """
        # mJ / V = mC; mC / 3600 = mAh
        self._drain(millijoules / self.profile.voltage_v / _SECONDS_PER_HOUR)

    def transmit(self, messages: int = 1) -> None:
        """Drain the cost of ``messages`` radio transmissions."""
        self.spend_mj(self.profile.tx_mj * messages)

    def hours_left(self) -> float:
        """Hours of powered time left at the base current (for the dashboard)."""
        if not self.profile.base_ua:
            return float("inf")
        return self._charge_mah / (self.profile.base_ua * 1e-3)

    def _drain(self, mah: float) -> None:
        if not mah >= 0.0:
            raise BatteryError(f"a drain must be a non-negative amount, got {mah} mAh")
        self._charge_mah = max(0.0, self._charge_mah - mah)
