"""``twin broker --run DIR [--port P]``: serve a provisioned fleet on the embedded broker.

Registered onto the ``twin`` app by ``twin.cli`` with :func:`register`. Reads the PKI from
``DIR/pki/{root,issuing,crl}.pem`` and ``DIR/broker/{cert,key}.pem``, listens on 127.0.0.1
with mutual TLS until interrupted (or for ``--seconds``), and re-reads ``DIR/pki/crl.pem`` on
SIGHUP, as Mosquitto does, dropping the sessions of newly revoked devices. Bad input (missing
or invalid files, a port in use) exits with status 2 and one line on stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    from broker.embedded import BrokerSettings


def register(app: typer.Typer) -> None:
    """Add the ``broker`` command to ``app``."""
    app.command("broker")(broker)


def broker(
    run: Annotated[Path, typer.Option("--run", help="Provisioned run folder (pki/, broker/).")],
    port: Annotated[int, typer.Option(help="TCP port on 127.0.0.1 (0: any free port).")] = 8883,
    seconds: Annotated[float, typer.Option(help="Stop after this long (0: until Ctrl-C).")] = 0,
) -> None:
    """Serve the fleet provisioned in RUN over mutual-TLS MQTT on 127.0.0.1."""
    from broker.embedded import BrokerSettings
    from broker.errors import BrokerSetupError
    from broker.tls import TlsFiles

    err = Console(stderr=True)
    if not 0 <= port <= 65535 or seconds < 0:
        err.print("[bold red]error:[/] --port must be 0-65535 and --seconds >= 0",
                  highlight=False)
        raise typer.Exit(2)
    settings = BrokerSettings(TlsFiles.from_run_dir(run), port=port)
    try:
        asyncio.run(_serve(settings, seconds))
    except BrokerSetupError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        pass


async def _serve(settings: BrokerSettings, seconds: float) -> None:
    from broker.embedded import EmbeddedBroker
    from broker.errors import BrokerSetupError

    out = Console()
    stop = asyncio.Event()
    async with EmbeddedBroker(settings) as running:
        out.print(f"serving mqtts://127.0.0.1:{running.port} (mutual TLS, CRL "
                  f"{settings.tls.crl}); SIGHUP reloads the CRL", highlight=False)
        loop = asyncio.get_running_loop()

        async def reload() -> None:
            try:
                dropped = await running.reload_crl()
                out.print(f"CRL reloaded; dropped {len(dropped)} revoked session(s)")
            except BrokerSetupError as exc:  # keep serving with the CRL in force
                out.print(f"CRL not reloaded: {exc}", highlight=False)

        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(reload()))
            loop.add_signal_handler(signal.SIGTERM, stop.set)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds or None)
        out.print(f"stopped: {running.stats()}", highlight=False)
