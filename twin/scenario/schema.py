"""The scenario file, as frozen pydantic models (schema version 1).

A scenario says which fleet to simulate, over which network and broker, for how long, with
which defences switched off and which attacks injected. The drivers read these models and
nothing else, so every rule a file must obey lives here, and a command-line override is
re-validated by the same rules (``Scenario.with_overrides``).

All models forbid unknown keys (a misspelt key is an error, not a silently ignored default)
and are strict (``"5"`` is not a number, ``yes`` in quotes is not a bool): scenario files are
written by people, and a typo must not quietly change an experiment.

Defence and attack names are checked against the names the caller knows, passed in the
pydantic validation context as ``{"defences": [...], "attacks": [...]}`` (see
``twin.scenario.loader.load_scenario``). Without a context the names are not checked.

Length: over 400 lines; one model per scenario section, each short, kept in one module so
the schema (version 1) can be read top to bottom against the scenario files.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from twin.scenario.durations import Duration, PositiveDuration, format_duration

__all__ = [
    "DEVICE_KINDS",
    "Attack",
    "Broker",
    "Cohort",
    "DeviceKind",
    "Fleet",
    "Latency",
    "Network",
    "Outage",
    "Outputs",
    "Revocation",
    "Scenario",
    "known_names_context",
    "rescale_devices",
]

DeviceKind = Literal["ecg_patch", "bp_cuff", "sweat_patch"]
DEVICE_KINDS: tuple[DeviceKind, ...] = get_args(DeviceKind)
"""Kinds in their canonical order (the tie-break order when a fleet is rescaled)."""

_CONFIG = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


def _known_name(kind: str, value: str, info: ValidationInfo) -> str:
    """Refuse a defence/attack name the caller does not know (context key ``kind + 's'``)."""
    context = info.context or {}
    known = context.get(kind + "s")
    if known is not None and value not in known:
        listed = ", ".join(sorted(known)) or "none"
        raise PydanticCustomError(
            "unknown_name",
            "unknown {kind} {name} (known: {known})",
            {"kind": kind, "name": repr(value), "known": listed},
        )
    return value


def _known_defence(value: str, info: ValidationInfo) -> str:
    return _known_name("defence", value, info)


def _known_attack(value: str, info: ValidationInfo) -> str:
    return _known_name("attack", value, info)


DefenceName = Annotated[str, AfterValidator(_known_defence)]
AttackName = Annotated[str, AfterValidator(_known_attack)]


class Cohort(BaseModel):
    """The simulated patients wearing the fleet: ages, sex mix and resting vital signs."""

    model_config = _CONFIG

    age_min: int = Field(default=18, ge=0, le=120)
    age_max: int = Field(default=90, ge=0, le=120)
    female_fraction: float = Field(default=0.5, ge=0, le=1)
    hr_mean_bpm: float = Field(default=72.0, ge=30, le=200)
    hr_sd_bpm: float = Field(default=8.0, ge=0)
    sys_mean_mmhg: float = Field(default=125.0, ge=50, le=260)
    sys_sd_mmhg: float = Field(default=12.0, ge=0)
    dia_mean_mmhg: float = Field(default=78.0, ge=20, le=160)
    dia_sd_mmhg: float = Field(default=8.0, ge=0)
    salty_sweater_fraction: float = Field(default=0.2, ge=0, le=1)
    """Share of patients with high sweat sodium (the population the sweat patch screens)."""
    dipping_mix: tuple[float, float, float, float] = (0.15, 0.50, 0.27, 0.08)
    """Shares of extreme dippers, dippers, non-dippers and risers (night-time BP fall)."""
    white_coat_fraction: float = Field(default=0.2, ge=0, le=1)
    ambient_c: float = Field(default=22.0, ge=-10, le=50)
    """Ambient temperature, degrees Celsius (drives sweating)."""
    episode_rate: float = Field(default=1.0, ge=0)
    """Multiplier on every clinical episode rate; 0 switches episodes off."""
    episode_rates: dict[str, Annotated[float, Field(ge=0)]] = {}
    """Per-episode-kind multipliers, e.g. ``{af: 5}``; names as ``twin signals --help`` lists."""

    @field_validator("dipping_mix")
    @classmethod
    def _mix(cls, value: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        if min(value) < 0 or sum(value) <= 0:
            raise PydanticCustomError("dipping_mix", "needs four shares >= 0, not all 0")
        return value

    @field_validator("episode_rates")
    @classmethod
    def _known_episodes(cls, value: dict[str, float]) -> dict[str, float]:
        from devices.physiology.sources import episode_names

        known = episode_names()
        if unknown := sorted(set(value) - set(known)):
            raise PydanticCustomError(
                "unknown_episode", "unknown episode kind '{name}' (known: {known})",
                {"name": unknown[0], "known": ", ".join(known)})
        return value

    @field_validator("age_max")
    @classmethod
    def _age_order(cls, value: int, info: ValidationInfo) -> int:
        age_min = info.data.get("age_min")
        if age_min is not None and value < age_min:
            raise PydanticCustomError(
                "age_order",
                "must be >= age_min ({age_min}) (got {value})",
                {"age_min": age_min, "value": value},
            )
        return value

    @field_validator("dia_mean_mmhg")
    @classmethod
    def _pressure_order(cls, value: float, info: ValidationInfo) -> float:
        systolic = info.data.get("sys_mean_mmhg")
        if systolic is not None and value >= systolic:
            raise PydanticCustomError(
                "pressure_order",
                "must be below sys_mean_mmhg ({sys}) (got {value})",
                {"sys": systolic, "value": value},
            )
        return value


class Replay(BaseModel):
    """Real-signal replay: the first ``devices`` ECG patches stream this WFDB record
    (resampled to the device rate, its reference annotations as ground truth)."""

    model_config = _CONFIG

    record: str = Field(min_length=1)
    """Path of the record without extension (e.g. ``data/mitdb/101``), absolute or relative
    to the working directory."""
    devices: int = Field(default=1, ge=1)

    @field_validator("record")
    @classmethod
    def _record_exists(cls, value: str) -> str:
        for suffix in (".hea", ".dat", ".atr"):
            if not Path(value + suffix).is_file():
                raise PydanticCustomError("no_record", "no WFDB file {path}",
                                          {"path": value + suffix})
        return value


class Fleet(BaseModel):
    """Which wearables, how many of each, for which tenant and patient cohort."""

    model_config = _CONFIG

    tenant: str = Field(default="ward-7", pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")
    devices: dict[DeviceKind, Annotated[int, Field(ge=0)]]
    cohort: Cohort = Cohort()
    buffer_windows: int = Field(default=4096, ge=1, le=1_000_000)
    """Telemetry windows a device keeps while offline before it drops the oldest."""
    replay: Replay | None = None
    """Some ECG patches stream a real WFDB record instead of the synthetic ECG."""
    identity: Literal["seeded", "qdid"] = "seeded"
    """``qdid``: every device is a QDID chip (PUF, fuzzy extractor, keys on demand) enrolled
    through the platform's enrolment service before the run (attestation token over a
    platform nonce, CSR, certificate), about 3 ms of CPU a device. ``seeded``: identities
    drawn from the run seed, no platform (fast; no revocations)."""
    certificate_validity: PositiveDuration = 7 * 86400.0
    """Lifetime of the operational certificates the platform issues (``identity: qdid``)."""
    renew_window: Duration = 2 * 86400.0
    """A device renews its certificate (fresh attestation and CSR) once less than this is
    left; 0 switches renewal off, so certificates expire and the broker refuses them."""

    @field_validator("renew_window")
    @classmethod
    def _window_inside_validity(cls, value: float, info: ValidationInfo) -> float:
        validity = info.data.get("certificate_validity")
        if value < 0 or (validity is not None and value >= validity):
            raise PydanticCustomError(
                "renew_window", "must be >= 0 and shorter than certificate_validity ({v})",
                {"v": format_duration(validity or 0.0)})
        return value

    @field_validator("devices")
    @classmethod
    def _not_empty(cls, value: dict[DeviceKind, int]) -> dict[DeviceKind, int]:
        if sum(value.values()) < 1:
            raise PydanticCustomError("empty_fleet", "the fleet is empty; give at least one device")
        return value


class Latency(BaseModel):
    """One-way network latency, lognormal: ``median`` and shape ``sigma``."""

    model_config = _CONFIG

    median: PositiveDuration = 0.04
    sigma: float = Field(default=0.5, ge=0, le=3)


class Outage(BaseModel):
    """A window of time in which the links of a share of the fleet are down."""

    model_config = _CONFIG

    at: Duration
    duration: PositiveDuration
    fraction: float = Field(default=1.0, gt=0, le=1)
    """Share of devices whose link goes down (chosen by the run's seed)."""


class Network(BaseModel):
    """The simulated network between devices and broker."""

    model_config = _CONFIG

    latency: Latency = Latency()
    loss: float = Field(default=0.0, ge=0, lt=1)
    """Probability that any one transmission is lost."""
    outages: list[Outage] = []


class Broker(BaseModel):
    """Which MQTT broker: the simulated model (sim), the embedded one, or Mosquitto (live)."""

    model_config = _CONFIG

    kind: Literal["simulated", "embedded", "mosquitto"] = "simulated"
    host: str = "127.0.0.1"
    port: int = Field(default=8883, ge=1, le=65535)


class Attack(BaseModel):
    """One attack plug-in to inject, when, and its plug-in specific parameters."""

    model_config = _CONFIG

    name: AttackName
    at: Duration = 0.0
    params: dict[str, Any] = {}


class Outputs(BaseModel):
    """What the run stores besides its report."""

    model_config = _CONFIG

    store_telemetry: bool = True
    strip_seconds: float = Field(default=10.0, ge=0)
    """Seconds of raw signal kept around an anomaly for the dashboard."""


class Ota(BaseModel):
    """An over-the-air update campaign during the run (devices ship running sequence 1)."""

    model_config = _CONFIG

    at: Duration
    sequence: int = Field(default=2, ge=2, lt=2**32)
    image_bytes: int = Field(default=4096, ge=64, le=60_000)
    canary: float = Field(default=0.05, gt=0, le=1)
    """Share of the fleet updated first; the rest follows only if every canary installs."""
    faulty: bool = False
    """A correctly signed release whose image fails its self test after installation."""


class Revocation(BaseModel):
    """Revoke devices through the platform at a point in the run (needs ``fleet.identity:
    qdid``): inventory, CRL and broker policy; the broker drops their sessions."""

    model_config = _CONFIG

    at: Duration
    devices: list[Annotated[int, Field(ge=0)]] = []
    """Fleet numbers, from 0, in kind order (ECG patches, then cuffs, then sweat patches)."""
    batch: DeviceKind | None = None
    """Every device of this kind (a recalled product batch)."""
    reason: Literal["unspecified", "key_compromise", "superseded", "cessation_of_operation",
                    "affiliation_changed"] = "key_compromise"
    """RFC 5280 5.3.1 reason, for the audit trail."""

    @model_validator(mode="after")
    def _one_target(self) -> Revocation:
        if bool(self.devices) == (self.batch is not None):
            raise PydanticCustomError("revocation_target",
                                      "give either devices: [numbers] or batch: <kind>")
        return self


class Scenario(BaseModel):
    """A whole experiment: fleet, network, broker, defences, attacks, for how long, which seed.

    The sim driver reads these field names; they are part of the schema (version 1) and are
    never renamed, only added to.
    """

    model_config = _CONFIG

    schema_version: Literal[1] = 1
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    description: str = ""
    teaching: str = ""
    """Free text the dashboard shows: what a student should look at in this run."""
    seed: int = Field(default=0, ge=0, le=2**63 - 1)
    duration: PositiveDuration
    window: PositiveDuration = 10.0
    """Telemetry window period in seconds: each device publishes one window per period."""
    mode: Literal["sim", "live"] = "sim"
    fleet: Fleet
    network: Network = Network()
    broker: Broker = Broker()
    defences: dict[DefenceName, bool] = {}
    """Defences switched explicitly; a defence not listed is ON."""
    attacks: list[Attack] = []
    ota: Ota | None = None
    revocations: list[Revocation] = []
    outputs: Outputs = Outputs()

    @model_validator(mode="after")
    def _fits_in_duration(self) -> Scenario:
        """Refuse a window or outage that cannot happen inside the run.

        Raises:
            PydanticCustomError: with ``ctx["path"]`` naming the offending key, because an
                after-validator's error otherwise carries no location.
        """
        end = format_duration(self.duration)
        if self.window > self.duration:
            raise PydanticCustomError(
                "window_too_long",
                "window {window} is longer than the run (duration {end})",
                {"path": "window", "window": format_duration(self.window), "end": end},
            )
        for index, outage in enumerate(self.network.outages):
            if outage.at >= self.duration:
                raise PydanticCustomError(
                    "outage_after_end",
                    "outage {index} starts at {at}, not before the end of the run (duration {end})",
                    {
                        "path": f"network.outages.{index}.at",
                        "index": index,
                        "at": format_duration(outage.at),
                        "end": end,
                    },
                )
        if self.ota is not None and self.ota.at >= self.duration:
            raise PydanticCustomError(
                "ota_after_end",
                "the OTA campaign starts at {at}, not before the end of the run (duration {end})",
                {"path": "ota.at", "at": format_duration(self.ota.at), "end": end},
            )
        for index, revocation in enumerate(self.revocations):
            _check_revocation(self, index, revocation)
        return self

    def defence_on(self, name: str) -> bool:
        """Tell whether a defence is switched on.

        Args:
            name: a defence name (as listed by the defence registry).

        Returns:
            False only when the scenario sets ``defences: {name: false}``: every defence is
            on unless a scenario turns it off, so a new defence protects old scenarios too.
        """
        return self.defences.get(name, True)

    def device_count(self) -> int:
        """Return the total number of devices in the fleet (all kinds)."""
        return sum(self.fleet.devices.values())

    def with_overrides(
        self,
        devices: int | None = None,
        duration: float | str | None = None,
        seed: int | None = None,
        mode: str | None = None,
        defences: Mapping[str, bool] | None = None,
    ) -> Scenario:
        """Return a copy with command-line overrides applied and re-validated.

        Args:
            devices: total fleet size; the kinds keep their proportions
                (see :func:`rescale_devices`).
            duration: run length, seconds or a duration string such as ``"2h"``.
            seed: the run's root seed.
            mode: ``"sim"`` or ``"live"``.
            defences: defence switches to set (``{"topic_acl": False}``), on top of the
                file's; names are checked against the defence registry.

        Returns:
            A new Scenario; ``self`` is unchanged (frozen).

        Raises:
            ScenarioError: when an override is invalid, worded as for a bad file, because
                the same rules are applied (e.g. a duration shorter than an outage start).
        """
        # Imported here: the loader imports this module (it owns the error and its wording).
        from twin.scenario.loader import ScenarioError, describe_validation_error

        source = f"{self.name} (overrides)"
        data = self.model_dump()
        if devices is not None:
            try:
                data["fleet"]["devices"] = rescale_devices(self.fleet.devices, devices)
            except ValueError as exc:
                raise ScenarioError([f"{source}: devices: {exc}"]) from None
        for key, value in (("duration", duration), ("seed", seed), ("mode", mode)):
            if value is not None:
                data[key] = value
        context = None
        if defences:
            from scenarios.attacks import known_attacks
            from twin.core.defences import DEFENCES

            data["defences"] = {**data["defences"], **defences}
            context = known_names_context(tuple(DEFENCES), known_attacks())
        try:
            return Scenario.model_validate(data, context=context)
        except ValidationError as exc:
            raise ScenarioError(describe_validation_error(exc, source)) from None


def _check_revocation(scenario: Scenario, index: int, revocation: Revocation) -> None:
    """A revocation must happen in the run, to devices the fleet has, through a platform.

    Raises:
        PydanticCustomError: with ``ctx["path"]`` naming the key.
    """
    where = f"revocations.{index}"
    if scenario.fleet.identity != "qdid":
        raise PydanticCustomError(
            "revocation_needs_platform",
            "revocations need devices enrolled by the platform: set fleet.identity: qdid",
            {"path": where})
    if revocation.at >= scenario.duration:
        raise PydanticCustomError(
            "revocation_after_end", "revocation {index} at {at} is not before the end of the run "
            "(duration {end})", {"path": f"{where}.at", "index": index,
                                 "at": format_duration(revocation.at),
                                 "end": format_duration(scenario.duration)})
    count = scenario.device_count()
    for k, number in enumerate(revocation.devices):
        if number >= count:
            raise PydanticCustomError(
                "no_such_device", "device {number} does not exist (the fleet has {count}: "
                "0..{last})", {"path": f"{where}.devices.{k}", "number": number,
                               "count": count, "last": count - 1})
    if revocation.batch is not None and not scenario.fleet.devices.get(revocation.batch):
        raise PydanticCustomError(
            "empty_batch", "the fleet has no {kind} devices to revoke",
            {"path": f"{where}.batch", "kind": revocation.batch})


def rescale_devices(devices: dict[DeviceKind, int], total: int) -> dict[DeviceKind, int]:
    """Rescale a fleet to exactly ``total`` devices, keeping the kinds' proportions.

    Largest-remainder rounding on exact integers: each kind gets the floor of its share, and
    the devices left over go to the largest remainders, ties broken by the canonical kind
    order (ecg_patch, bp_cuff, sweat_patch), so the result is deterministic.

    Args:
        devices: the current counts per kind (total >= 1).
        total: the wanted fleet size.

    Returns:
        Counts per kind summing to ``total``, keys in the order of ``devices``.

    Raises:
        ValueError: when ``total`` is not an int >= 1 or ``devices`` is empty.
    """
    if isinstance(total, bool) or not isinstance(total, int) or total < 1:
        raise ValueError(f"must be an integer >= 1 (got {total!r})")
    current = sum(devices.values())
    if current < 1:
        raise ValueError("the fleet is empty; there are no proportions to keep")
    floors = {kind: total * count // current for kind, count in devices.items()}
    remainders = {kind: total * count % current for kind, count in devices.items()}
    left = total - sum(floors.values())
    order = sorted(devices, key=lambda kind: (-remainders[kind], _kind_rank(kind)))
    for kind in order[:left]:
        floors[kind] += 1
    return floors


def _kind_rank(kind: DeviceKind) -> int:
    """Position of a kind in the canonical order (the tie-break for equal remainders)."""
    return DEVICE_KINDS.index(kind)


def known_names_context(
    known_defences: Collection[str], known_attacks: Collection[str]
) -> dict[str, tuple[str, ...]]:
    """Build the validation context that makes defence and attack names checked.

    Args:
        known_defences: names of the defences the caller can switch.
        known_attacks: names of the attack plug-ins the caller can inject.

    Returns:
        ``{"defences": (...), "attacks": (...)}`` for ``Scenario.model_validate(context=...)``.
    """
    return {"defences": tuple(known_defences), "attacks": tuple(known_attacks)}
