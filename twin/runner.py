"""Running a scenario end to end: load, override, simulate, store, report.

The CLI, the benchmark and the tests all go through :func:`run_scenario`, so a report made by
``twin run`` is exactly what the tests check.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloud.store import SqliteStore
from scenarios.attacks import known_attacks
from twin.core.defences import DEFENCES
from twin.core.errors import MedtwinError
from twin.live import LiveRun, check_supported
from twin.live.brokers import BrokerAddress, parse_broker_url
from twin.report import build_report, write_report
from twin.scenario import Scenario, load_scenario
from twin.sim.driver import SimRun


class RunError(MedtwinError):
    """A run could not start (output folder unusable, mode not available)."""


@dataclass(frozen=True)
class RunOutput:
    """Where a run's files are, and its report."""

    out: Path
    report: dict[str, Any]

    @property
    def report_json(self) -> Path:
        """Path of ``report.json``."""
        return self.out / "report.json"


def load(source: str | Path) -> Scenario:
    """Load a scenario file or bundled name against the project's defences and attacks.

    Raises:
        ScenarioError: one line per problem, naming the file and key.
    """
    return load_scenario(source, known_defences=tuple(DEFENCES), known_attacks=known_attacks())


def prepare_out(out: Path, *, force: bool = False) -> Path:
    """Create the output folder, refusing one that already holds a run unless ``force``.

    Raises:
        RunError: the folder cannot be created or written, or holds a run already.
    """
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(f"cannot create output folder {out}: {exc.strerror or exc}") from None
    if not out.is_dir():
        raise RunError(f"output path {out} is not a folder")
    existing = [out / n for n in ("store.sqlite", "report.json") if (out / n).exists()]
    if existing and not force:
        raise RunError(f"{out} already holds a run; choose another --out or pass --force")
    for path in existing:
        path.unlink()
    for suffix in ("-wal", "-shm"):
        (out / f"store.sqlite{suffix}").unlink(missing_ok=True)
    probe = out / ".write-test"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise RunError(f"output folder {out} is not writable: {exc.strerror or exc}") from None
    return out


def _external_broker(scenario: Scenario, url: str | None) -> BrokerAddress | None:
    """The external broker named on the command line, or by the scenario file."""
    if url is not None:
        return parse_broker_url(url)
    if scenario.mode == "live" and scenario.broker.kind == "mosquitto":
        return BrokerAddress(scenario.broker.host, scenario.broker.port, "mosquitto")
    return None


def run_scenario(
    scenario: Scenario,
    out: Path,
    *,
    force: bool = False,
    progress: Callable[[float], None] | None = None,
    time_scale: float = 1.0,
    broker: str | None = None,
    platform: Path | None = None,
) -> RunOutput:
    """Run a scenario and write ``report.json``, ``report.md`` and ``store.sqlite`` to ``out``.

    In live mode the fleet is provisioned into ``out/platform`` (QDID identities, PKI, broker
    files) and talks mutual-TLS MQTT to the embedded broker, ``time_scale`` times faster than
    the wall clock. ``broker`` (``mqtts://HOST:PORT``, or a scenario's ``broker: {kind:
    mosquitto}``) is an external broker configured for the fleet in ``platform`` (a folder
    ``twin provision`` wrote); ``platform`` alone reuses that fleet with the embedded broker.

    Raises:
        RunError: the output folder is unusable, or an external broker has no ``platform``.
        LiveError: the scenario uses what live mode does not support yet, or a bad URL.
    """
    external = _external_broker(scenario, broker)
    if scenario.mode == "live":
        check_supported(scenario, time_scale)  # before anything is written
        if scenario.revocations:  # the live driver does not schedule them yet
            raise RunError("revocations in a scenario run in sim mode only (for now); in live "
                           "mode use twin platform revoke on the run's platform folder")
        if external is not None and platform is None:
            raise RunError("an external broker needs --platform DIR: the fleet "
                           "(twin provision --out DIR) whose configuration it serves")
    prepare_out(out, force=force)
    platform_dir = platform or out / "platform"
    if scenario.mode == "live" and platform is None and platform_dir.exists():
        if not force:
            raise RunError(f"{platform_dir} already holds a fleet; pass --force to replace it")
        shutil.rmtree(platform_dir)
    store = SqliteStore.create(out / "store.sqlite")
    try:
        store.set_meta("scenario", scenario.model_dump_json())
        live = None
        if scenario.mode == "live":
            live = LiveRun(scenario, store, platform_dir, time_scale=time_scale,
                           progress=progress, broker=external, provisioned=platform is not None)
            result = live.run()
        else:
            result = SimRun(scenario, store, progress=progress).run()
        report = build_report(result, store)
        if live is not None and live.traffic is not None:
            report["brokers"] = [live.traffic.as_report()]  # which broker carried what
        store.set_meta("report", "report.json")
    finally:
        store.close()
    write_report(report, out)
    return RunOutput(out, report)
