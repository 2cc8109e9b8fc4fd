"""``twin rot stats``: PUF population metrics of the simulated QDID root of trust.

Registered onto the ``twin`` app by ``twin.cli`` with :func:`register`::

    twin rot stats --chips 1000 --reads 10 --json stats.json --bits bits.bin --seed 1

prints a table and writes the JSON (issue 4's keys: ``chips``, ``reads``, ``bits_per_chip``,
``uniformity``, ``uniqueness``, ``bit_aliasing``, ``ber_nominal``, ``ber_worst_corner``,
``min_entropy_per_bit``, ``reconstructions``, ``key_failures``, and a few more). ``--bits``
writes the enrolled response bits of every chip, chip after chip, packed MSB first, for
external randomness test suites. Bad flags exit with status 2 and one line on stderr.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

MAX_CHIPS = 100_000
MAX_READS = 10_000


def register(app: typer.Typer) -> None:
    """Add the ``rot`` command group to ``app``."""
    rot = typer.Typer(name="rot", help="The QDID root of trust: PUF metrics.",
                      no_args_is_help=True, add_completion=False)
    rot.command("stats")(stats)
    app.add_typer(rot, name="rot")


def stats(
    chips: Annotated[int, typer.Option(help="Simulated chips in the population.")] = 1000,
    reads: Annotated[int, typer.Option(help="Reads per chip per condition.")] = 10,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the JSON here.")] = None,
    bits: Annotated[Path | None, typer.Option(help="Write the raw response bits here.")] = None,
    seed: Annotated[int, typer.Option(help="Run seed.")] = 1,
) -> None:
    """Manufacture, enrol and measure a population of chips; print and save the metrics."""
    from devices.rot.metrics import pack_bits, population_stats

    err = Console(stderr=True)
    problem = _check(chips, reads, seed)
    if problem:
        err.print(f"[bold red]error:[/] {problem}", highlight=False)
        raise typer.Exit(2)
    result, response = population_stats(seed, chips, reads,
                                        progress=lambda line: err.print(line, highlight=False))
    doc = result.as_dict()
    try:
        if json_out is not None:
            json_out.write_text(json.dumps(doc, indent=2) + "\n")
        if bits is not None:
            bits.write_bytes(pack_bits(response))
    except OSError as exc:
        err.print(f"[bold red]error:[/] cannot write {exc.filename}: {exc.strerror}",
                  highlight=False)
        raise typer.Exit(2) from None
    Console().print(_table(doc))


def _check(chips: int, reads: int, seed: int) -> str:
    if not 2 <= chips <= MAX_CHIPS:
        return f"--chips must be in 2..{MAX_CHIPS:,}, got {chips}"
    if not 1 <= reads <= MAX_READS:
        return f"--reads must be in 1..{MAX_READS:,}, got {reads}"
    if not 0 <= seed <= 2**63 - 1:
        return f"--seed must be in 0..2**63-1, got {seed}"
    return ""


_IDEAL = {"uniformity": "0.5", "uniqueness": "0.5", "bit_aliasing": "0.5",
          "ber_nominal": "0", "ber_worst_corner": "0", "ber_worst_corner_masked": "0",
          "min_entropy_per_bit": "1", "key_failures": "0", "key_failure_rate": "0"}


def _table(doc: dict[str, float | int | str]) -> Table:
    table = Table(title="QDID PUF population metrics")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("ideal", justify="right")
    for name, value in doc.items():
        shown = f"{value:.4f}" if isinstance(value, float) else f"{value:,}" if isinstance(
            value, int) else str(value)
        table.add_row(name, shown, _IDEAL.get(name, ""))
    return table
