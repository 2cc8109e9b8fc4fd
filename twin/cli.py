"""The ``twin`` command line (typer).

Every command turns the project's own errors into one line on stderr and exit status 2, so a
script can tell bad input from a crash (which keeps its traceback).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from twin import __version__
from twin.commands import broker, dashboard, provision, rot, signals
from twin.commands import eval as evaluate
from twin.core.errors import MedtwinError
from twin.scenario import bundled_scenarios, format_duration, parse_duration

app = typer.Typer(
    name="twin",
    help="medtwin: a healthcare IoT security digital twin.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)


def _fail(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(2)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"medtwin {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = None,
) -> None:
    """medtwin: simulate a hospital's wearables, their root of trust, and attacks on them."""


@app.command()
def run(
    scenario: Annotated[str, typer.Argument(help="A scenario file, or a bundled name.")],
    devices: Annotated[int | None, typer.Option(help="Total devices (same mix).")] = None,
    duration: Annotated[str | None, typer.Option(help="Simulated time: 90s, 15m, 2h, 1d.")] = None,
    seed: Annotated[int | None, typer.Option(help="Run seed (overrides the file's).")] = None,
    mode: Annotated[str | None, typer.Option(help="sim or live.")] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder [runs/NAME].")] = None,
    force: Annotated[bool, typer.Option(help="Replace a run already in --out.")] = False,
    time_scale: Annotated[float, typer.Option(help="Live mode: simulated seconds per "
                                                   "wall second.")] = 1.0,
    defence: Annotated[list[str] | None, typer.Option(
        help="Switch a defence, e.g. --defence topic_acl=off (repeatable).")] = None,
    broker: Annotated[str | None, typer.Option(
        help="Live mode: an external broker, mqtts://HOST:PORT (needs --platform).")] = None,
    platform: Annotated[Path | None, typer.Option(
        help="Live mode: a fleet from `twin provision --out DIR` to use.")] = None,
) -> None:
    """Run a scenario; writes report.json, report.md and store.sqlite."""
    from twin.runner import load, run_scenario

    try:
        if devices is not None and devices < 1:
            raise _fail(f"--devices must be at least 1, got {devices}")
        seconds = None
        if duration is not None:
            try:
                seconds = parse_duration(duration)
            except ValueError as exc:
                raise _fail(f"--duration: {exc}") from None
        switches = _defence_switches(defence or [])
        sc = load(scenario).with_overrides(devices=devices, duration=seconds, seed=seed, mode=mode,
                                           defences=switches)
        folder = out or Path("runs") / sc.name
        with _progress(sc.duration, sc.device_count()) as tick:
            if time_scale <= 0:
                raise _fail(f"--time-scale must be positive, got {time_scale}")
            output = run_scenario(sc, folder, force=force, progress=tick, time_scale=time_scale,
                                  broker=broker, platform=platform)
    except MedtwinError as exc:
        raise _fail(str(exc)) from None
    t = output.report["telemetry"]
    typer.echo(f"{sc.name}: {output.report['devices']:,} devices, "
               f"{format_duration(sc.duration)} simulated in {output.report['wall_seconds']:.1f} s "
               f"({output.report['realtime_factor']:,}x real time)")
    typer.echo(f"telemetry: {t['published']:,} published, {t['stored']:,} stored, "
               f"{t['rejected']:,} rejected, {t['lost']:,} lost, {t['pending']:,} pending")
    for b in output.report.get("brokers", []):
        typer.echo(f"broker {b['kind']} {b['url']}: {b['published']:,} published to it, "
                   f"{b['delivered']:,} delivered by it")
    typer.echo(f"report: {output.report_json}")
    typer.echo(f"details: {output.out / 'report.md'}")


def _defence_switches(items: list[str]) -> dict[str, bool]:
    """``["topic_acl=off", ...]`` as ``{"topic_acl": False}``; a malformed item fails."""
    states = {"on": True, "off": False}
    switches = {}
    for item in items:
        name, _, state = item.partition("=")
        if state.lower() not in states or not name:
            raise _fail(f"--defence {item!r}: write NAME=on or NAME=off")
        switches[name] = states[state.lower()]
    return switches


class _progress:
    """A rich progress bar over simulated time on a terminal; nothing otherwise."""

    def __init__(self, total: float, devices: int) -> None:
        self._bar: Progress | None = None
        if err.is_terminal:
            self._bar = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(),
                TextColumn("{task.fields[sim]} simulated"), TimeElapsedColumn(), console=err,
                transient=True,
            )
            self._task = self._bar.add_task(f"{devices:,} devices", total=total, sim="0s")

    def __enter__(self) -> Callable[[float], None] | None:
        if self._bar is None:
            return None
        self._bar.start()
        bar, task = self._bar, self._task
        return lambda now: bar.update(task, completed=now, sim=format_duration(round(now)))

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


@app.command()
def scenarios() -> None:
    """List the bundled scenarios, one line each."""
    entries = bundled_scenarios()
    width = max((len(name) for name, _ in entries), default=0)
    for name, summary in entries:
        typer.echo(f"{name:<{width}}  {summary}")


PEAK_PUBLISHERS_MIN = 200
"""The live suite's peak phase uses 200 publishers."""
BENCH_SUITES = ("fleet", "signals", "rot", "tinyml", "platform", "live")


@app.command()
def bench(
    devices: Annotated[str, typer.Option(help="Fleet sizes, comma-separated.")] = "1000,10000",
    duration: Annotated[str, typer.Option(help="Simulated time per size.")] = "10m",
    only: Annotated[str, typer.Option(help="Suites, comma-separated: "
                                           + ", ".join(BENCH_SUITES) + ".")] = "all",
    out: Annotated[Path | None, typer.Option(help="Also write the JSON here.")] = None,
    live_devices: Annotated[int, typer.Option(help="Live suite: devices (mTLS connections).")
                            ] = 1000,
    identity: Annotated[str, typer.Option(
        help="Fleet suite: seeded identities, or qdid (enrolled by the platform).")] = "seeded",
) -> None:
    """Benchmark the twin (fleet throughput and memory, signal synthesis, root of trust); JSON."""
    import json

    from twin.bench import fleet, live, platform, rot, signals, tinyml

    try:
        sizes = [int(x) for x in devices.split(",") if x.strip()]
        seconds = parse_duration(duration)
    except ValueError as exc:
        raise _fail(f"bad --devices or --duration: {exc}") from None
    suites = BENCH_SUITES if only == "all" else tuple(s.strip() for s in only.split(","))
    if unknown := [s for s in suites if s not in BENCH_SUITES]:
        raise _fail(f"--only: unknown suite {unknown[0]!r} (known: {', '.join(BENCH_SUITES)})")
    if not sizes or min(sizes) < 1:
        raise _fail("--devices needs positive fleet sizes, e.g. 1000,10000")
    if live_devices < PEAK_PUBLISHERS_MIN:
        raise _fail(f"--live-devices must be at least {PEAK_PUBLISHERS_MIN}")
    if identity not in fleet.IDENTITIES:
        raise _fail(f"--identity: {identity!r} is not one of {', '.join(fleet.IDENTITIES)}")

    def say(line: str) -> None:
        err.print(line, highlight=False)

    doc: dict[str, object] = {"machine": fleet.machine()}
    try:
        for suite in suites:
            say(f"bench: {suite} ...")
            if suite == "fleet":
                doc["fleet"] = fleet.run_bench(sizes, seconds, progress=say, identity=identity)
            elif suite == "signals":
                doc["signals"] = signals.run_signals_bench()
            elif suite == "tinyml":
                doc["tinyml"] = tinyml.run_tinyml_bench()
            elif suite == "platform":
                doc["platform"] = platform.run_platform_bench()
            elif suite == "live":
                doc["live"] = live.run_live_bench(live_devices, progress=say)
            else:
                doc["rot"] = rot.run_rot_bench()
    except MedtwinError as exc:
        raise _fail(str(exc)) from None
    text = json.dumps(doc, indent=2)
    typer.echo(text)
    if out is not None:
        out.write_text(text + "\n")


for _module in (broker, dashboard, evaluate, provision, rot, signals):
    _module.register(app)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
