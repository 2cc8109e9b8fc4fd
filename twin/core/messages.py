"""The message model: what devices, the platform and the cloud say to one another.

These are plain frozen values; how they look on the wire is :mod:`twin.core.codec`'s business
(house style 3: the model is separate from the codec, and every payload carries a schema
version). Field invariants that a peer could violate are enforced by the codec when decoding,
not here, so that building a message in a core costs nothing beyond the object.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

SCHEMA_VERSION = 1


class Kind(StrEnum):
    """The kinds of wearable in a fleet."""

    ECG_PATCH = "ecg_patch"
    BP_CUFF = "bp_cuff"
    SWEAT_PATCH = "sweat_patch"


@dataclass(frozen=True, slots=True)
class Metric:
    """A telemetry quantity: its wire name, unit and meaning."""

    name: str
    unit: str
    description: str


METRICS: Mapping[str, Metric] = {
    m.name: m
    for m in (
        Metric("hr_bpm", "beats/min", "heart rate over the window"),
        Metric("sys_mmhg", "mmHg", "systolic blood pressure"),
        Metric("dia_mmhg", "mmHg", "diastolic blood pressure"),
        Metric("na_mmol_l", "mmol/L", "sweat sodium concentration"),
        Metric("k_mmol_l", "mmol/L", "sweat potassium concentration"),
        Metric("cl_mmol_l", "mmol/L", "sweat chloride concentration"),
        Metric("sweat_rate_l_h", "L/h", "whole-body sweat rate estimate"),
    )
}
"""Every metric a device may report; the store has one column per entry."""

KIND_METRICS: Mapping[Kind, tuple[str, ...]] = {
    Kind.ECG_PATCH: ("hr_bpm",),
    Kind.BP_CUFF: ("sys_mmhg", "dia_mmhg"),
    Kind.SWEAT_PATCH: ("na_mmol_l", "k_mmol_l", "cl_mmol_l", "sweat_rate_l_h"),
}
"""The metrics each kind reports, in the order its sensor windows carry them."""


@dataclass(frozen=True, slots=True)
class Telemetry:
    """One window of a device's measurements.

    Attributes:
        device: the device's UEID hex.
        seq: the device's message sequence number (one counter for all it sends).
        t: simulated seconds since the start of the run when the window closed.
        kind: the device kind.
        values: metric name -> value, names from :data:`METRICS`.
        battery: state of charge, 0..1.
        score: the on-device anomaly score, if the device runs a model.
        flags: short labels the device raised for this window (e.g. ``"anomaly"``).
    """

    device: str
    seq: int
    t: float
    kind: Kind
    values: Mapping[str, float]
    battery: float
    score: float | None = None
    flags: tuple[str, ...] = ()


STRIP_LSB_MV = 0.005
"""Millivolts per count of a strip's int16 samples (5 uV: +-164 mV full scale, finer than the
ECG front ends' noise floor; half the bytes of float32)."""


@dataclass(frozen=True, slots=True)
class Strip:
    """The raw signal of a window a device's model flagged, sent for the cloud to confirm.

    Attributes:
        device: the device's UEID hex.
        seq: the device's message sequence number (the same counter as its telemetry).
        t: simulated seconds when the window closed; it covers ``[t - n/fs, t)``.
        fs: sampling rate (Hz).
        lsb_mv: millivolts per count of ``samples``.
        samples: int16 little-endian counts.
        flags: the labels the device raised for this window.
        score: the device's anomaly score for it.
    """

    device: str
    seq: int
    t: float
    fs: float
    lsb_mv: float
    samples: bytes
    flags: tuple[str, ...] = ()
    score: float | None = None


@dataclass(frozen=True, slots=True)
class DeviceEvent:
    """A lifecycle or security notice from a device (booted, reconnected, buffer overflow...)."""

    device: str
    seq: int
    t: float
    name: str
    detail: Mapping[str, str | int | float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Command:
    """A platform-to-device command (``quarantine``, ``set_window``, ``update``...)."""

    device: str
    seq: int
    t: float
    name: str
    args: Mapping[str, str | int | float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ProvisioningRequest:
    """A device's enrolment request: silicon attestation over a platform nonce, plus a CSR."""

    device: str
    nonce: bytes
    token: bytes
    csr: bytes


@dataclass(frozen=True, slots=True)
class ProvisioningResponse:
    """The platform's answer: an operational certificate and endpoint, or a refusal."""

    device: str
    nonce: bytes
    accepted: bool
    certificate: bytes = b""
    endpoint: str = ""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class FirmwareOffer:
    """An OTA update offered to one device: the signed manifest envelope (COSE_Sign1), the
    content key wrapped for this device, and the encrypted image (:mod:`twin.core.firmware`).
    """

    device: str
    seq: int
    t: float
    envelope: bytes
    wrapped_key: bytes
    ciphertext: bytes


Message = (Telemetry | DeviceEvent | Command | ProvisioningRequest | ProvisioningResponse
           | FirmwareOffer | Strip)
