"""``twin rot stats`` through typer's CliRunner on a fresh app (twin.cli wires it for real)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from twin.commands.rot import register

KEYS = {"chips", "reads", "bits_per_chip", "uniformity", "uniqueness", "bit_aliasing",
        "ber_nominal", "ber_worst_corner", "min_entropy_per_bit", "reconstructions",
        "key_failures"}


@pytest.fixture
def app() -> typer.Typer:
    root = typer.Typer()

    @root.callback()
    def _root() -> None:
        """The stand-in for ``twin``."""

    register(root)
    return root


def _run(app: typer.Typer, *args: str):
    return CliRunner().invoke(app, ["rot", "stats", *args])


def test_stats_writes_json_and_bits(app: typer.Typer, tmp_path: Path) -> None:
    out, bits = tmp_path / "stats.json", tmp_path / "bits.bin"
    result = _run(app, "--chips", "30", "--reads", "2", "--json", str(out), "--bits", str(bits))
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert set(doc) >= KEYS
    assert doc["chips"] == 30 and doc["reads"] == 2 and doc["reconstructions"] == 60
    for key in KEYS - {"chips", "reads", "bits_per_chip", "reconstructions", "key_failures"}:
        assert 0.0 <= doc[key] <= 1.0, key
    assert doc["key_failures"] == 0
    assert bits.stat().st_size == 30 * doc["bits_per_chip"] // 8
    assert "uniqueness" in result.output


def test_stats_are_deterministic_for_a_seed(app: typer.Typer, tmp_path: Path) -> None:
    docs = []
    for name in ("a", "b"):
        out = tmp_path / f"{name}.json"
        assert _run(app, "--chips", "10", "--reads", "1", "--seed", "9",
                    "--json", str(out)).exit_code == 0
        docs.append(out.read_bytes())
    assert docs[0] == docs[1]


@pytest.mark.parametrize("args", [("--chips", "1"), ("--reads", "0"), ("--chips", "x"),
                                  ("--seed", "-1")])
def test_bad_flags_exit_2_with_one_line(app: typer.Typer, args: tuple[str, ...]) -> None:
    result = _run(app, *args)
    assert result.exit_code == 2


def test_unwritable_output_is_a_clean_error(app: typer.Typer, tmp_path: Path) -> None:
    result = _run(app, "--chips", "4", "--reads", "1", "--json", str(tmp_path / "no" / "x.json"))
    assert result.exit_code == 2 and "cannot write" in result.output
