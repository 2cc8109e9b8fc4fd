"""``twin provision`` and ``twin platform revoke|renew``: the security platform's CLI.

Registered onto the ``twin`` app by ``twin.cli`` with :func:`register`::

    twin provision --devices 1000 --out runs/fleet [--seed 1] [--tenant ward-1]
    twin platform revoke runs/fleet DEVICE_ID     # inventory, CRL and ACL rewritten
    twin platform renew runs/fleet DEVICE_ID      # fresh attestation + CSR, new cert.pem
    twin platform ota runs/fleet --image app.bin --version 2 [--canary 5] [--kind bp_cuff]

``provision`` manufactures N QDID chips, registers them, enrols and onboards each through the
enrolment service's real checks, writes the run directory (see :mod:`twin.platform`), prints
a summary and the enrolment throughput. After a revocation, a running ``twin broker --run DIR``
picks the new CRL up on SIGHUP (Mosquitto likewise) and drops the revoked session. Bad input
exits with status 2 and one line on stderr.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from twin.core.errors import MedtwinError, TopicError
from twin.core.topics import check_tenant

MAX_DEVICES = 100_000
err = Console(stderr=True)


def register(app: typer.Typer) -> None:
    """Add ``provision`` and the ``platform`` command group to ``app``."""
    app.command("provision")(provision)
    platform = typer.Typer(name="platform", help="Act on a provisioned run directory.",
                           no_args_is_help=True, add_completion=False)
    platform.command("revoke")(revoke)
    platform.command("renew")(renew)
    platform.command("ota")(ota)
    app.add_typer(platform, name="platform")


def _fail(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(2)


def provision(
    devices: Annotated[int, typer.Option(help="How many devices to manufacture and enrol.")],
    out: Annotated[Path, typer.Option(help="The run directory to write.")],
    seed: Annotated[int, typer.Option(help="Run seed (chips and platform keys).")] = 1,
    tenant: Annotated[str, typer.Option(help="Tenant: [a-z0-9][a-z0-9-]{0,31}.")] = "ward-1",
    validity_days: Annotated[float, typer.Option(help="Device certificate lifetime.")] = 7.0,
) -> None:
    """Manufacture, register, enrol and onboard N devices; write PKI, certificates, configs."""
    from datetime import timedelta

    from twin.platform import provision as run

    if not 1 <= devices <= MAX_DEVICES:
        raise _fail(f"--devices must be in 1..{MAX_DEVICES:,}, got {devices}")
    if not 0 <= seed <= 2**63 - 1:
        raise _fail(f"--seed must be in 0..2**63-1, got {seed}")
    if not 0 < validity_days <= 398:
        raise _fail(f"--validity-days must be in (0, 398], got {validity_days}")
    try:
        check_tenant(tenant)
    except TopicError as exc:
        raise _fail(f"--tenant: {exc}") from None
    step = max(1, devices // 10)

    def progress(done: int) -> None:
        if done % step == 0 or done == devices:
            err.print(f"provision: {done:,}/{devices:,} devices", highlight=False)

    try:
        summary = run(out, devices, seed, tenant, validity=timedelta(days=validity_days),
                      progress=progress, clock=time.perf_counter)
    except (MedtwinError, OSError) as exc:
        raise _fail(str(exc)) from None
    states = ", ".join(f"{n:,} {s}" for s, n in summary.states.items())
    typer.echo(f"provisioned {summary.devices:,} devices for tenant {tenant}: {states}")
    typer.echo(f"enrolment: {summary.enrol_s:.2f} s, {summary.per_second:,.0f} devices/s "
               f"(attestation, CSR, certificate, inventory, grants; device side included)")
    typer.echo(f"manufacture (not timed as enrolment): {summary.manufacture_s:.2f} s; "
               f"files: {summary.write_s:.2f} s")
    typer.echo(f"run directory: {out}  (trust anchor {out / 'pki' / 'root.pem'}, "
               f"Mosquitto config {out / 'broker' / 'mosquitto.conf'})")


def revoke(
    run_dir: Annotated[Path, typer.Argument(help="A directory written by twin provision.")],
    device_id: Annotated[str, typer.Argument(help="The device's id (its UEID hex).")],
    reason: Annotated[str, typer.Option(help="Why, for the audit trail.")] = "unspecified",
) -> None:
    """Revoke one device: inventory, CRL (pki/crl.pem) and the Mosquitto ACL are rewritten."""
    from twin.platform import revoke_device

    try:
        done = revoke_device(run_dir, device_id, reason[:64])
    except MedtwinError as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"revoked {', '.join(done.devices) or device_id}; CRL {done.crl_number} lists "
               f"{len(list(done.crl))} certificate(s): {run_dir / 'pki' / 'crl.pem'}")
    typer.echo("a running broker drops the session on reload (twin broker: SIGHUP)")


def renew(
    run_dir: Annotated[Path, typer.Argument(help="A directory written by twin provision.")],
    device_id: Annotated[str, typer.Argument(help="The device's id (its UEID hex).")],
) -> None:
    """Renew one device's certificate: it re-attests and sends a fresh CSR."""
    from twin.platform import renew_device

    try:
        done = renew_device(run_dir, device_id)
    except MedtwinError as exc:
        raise _fail(str(exc)) from None
    expires = done.certificate.not_valid_after_utc.isoformat()
    typer.echo(f"renewed {done.device}: serial {done.serial:x}, valid until {expires}")


def ota(
    run_dir: Annotated[Path, typer.Argument(help="A directory written by twin provision.")],
    image: Annotated[Path, typer.Option(help="The plaintext firmware image file.")],
    version: Annotated[int, typer.Option(help="Its version: newer than every target runs.")],
    canary: Annotated[float, typer.Option(help="Percent of each kind's devices first.")] = 5.0,
    kind: Annotated[list[str] | None, typer.Option(help="Only this device kind (repeat).")]
    = None,
) -> None:
    """Sign, encrypt and publish a firmware image as an OTA campaign (DIR/ota/...)."""
    from twin.platform import KINDS
    from twin.platform_ota import publish_ota

    if not 0 < canary <= 100:
        raise _fail(f"--canary must be a percentage in (0, 100], got {canary}")
    kinds = tuple(kind or KINDS)
    if unknown := sorted(set(kinds) - set(KINDS)):
        raise _fail(f"--kind {unknown[0]!r} is not a device kind ({', '.join(KINDS)})")
    try:
        data = image.read_bytes()
    except OSError as exc:
        raise _fail(f"--image {image}: {exc.strerror or exc}") from None
    try:
        campaigns = publish_ota(run_dir, data, version, canary / 100.0, kinds)
    except MedtwinError as exc:
        raise _fail(str(exc)) from None
    for c in campaigns:
        typer.echo(f"{c.component} version {c.sequence}: {len(c.canary):,} canary + "
                   f"{len(c.rollout):,} rollout device(s) -> {c.folder}")
        if c.without_key:
            typer.echo(f"  {len(c.without_key):,} device(s) left out: no firmware key on record "
                       "(renew them first)")
    typer.echo(f"trust anchor: {run_dir / 'pki' / 'firmware-signing.pem'}")
