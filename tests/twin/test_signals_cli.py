"""``twin signals``: the command writes the documented .npz, checkable with numpy alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from twin.commands.signals import register

MITDB = Path("/work/shared/data/mitdb-ds1")


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.command()
    def _other() -> None:  # a second command, so typer keeps the command name
        """Nothing."""

    return app


def invoke(app: typer.Typer, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["signals", *args])
    return result.exit_code, result.output


def test_ecg_export_has_the_documented_arrays(app: typer.Typer, tmp_path: Path) -> None:
    out = tmp_path / "ecg.npz"
    code, text = invoke(app, "ecg", "--devices", "3", "--duration", "20s", "--seed", "4",
                        "--out", str(out), "--rhythm", "af")
    assert code == 0, text
    with np.load(out) as f:  # allow_pickle stays False: everything is plain arrays
        assert float(f["fs"]) == 250.0 and str(f["units"]) == "mV"
        assert f["signal"].shape == (3, 5000) and f["signal"].dtype == np.float32
        assert f["values"].shape == (2, 3, 1)
        assert set(f["beat_label"].tolist()) <= set("NSVFQ")
        assert f["beat_sample"].max() < 5000 and f["beat_device"].max() == 2
        ep = f["episodes"]
        assert ep.dtype.names == ("device", "kind", "start_s", "end_s")
        assert set(ep["kind"].tolist()) == {"af"} and np.all(ep["end_s"] == 20.0)


def test_same_seed_same_file_contents(app: typer.Typer, tmp_path: Path) -> None:
    for name in ("a", "b"):
        assert invoke(app, "bp", "--devices", "4", "--duration", "30s", "--seed", "9",
                      "--out", str(tmp_path / f"{name}.npz"))[0] == 0
    with np.load(tmp_path / "a.npz") as a, np.load(tmp_path / "b.npz") as b:
        assert a.files == b.files
        assert all(np.array_equal(a[k], b[k]) for k in a.files)
        assert str(a["units"]) == "mmHg" and "readings" in a.files


def test_sweat_and_hr_option(app: typer.Typer, tmp_path: Path) -> None:
    assert invoke(app, "sweat", "--devices", "2", "--duration", "1m", "--out",
                  str(tmp_path / "s.npz"))[0] == 0
    with np.load(tmp_path / "s.npz") as f:
        assert f["signal"].shape == (2, 60) and f["values"].shape == (6, 2, 4)
    assert invoke(app, "ecg", "--devices", "2", "--duration", "10s", "--hr", "60", "--rhythm",
                  "sinus", "--out", str(tmp_path / "e.npz"))[0] == 0
    with np.load(tmp_path / "e.npz") as f:
        assert np.all(np.abs(f["values"][0, :, 0] - 60.0) < 4.0)


@pytest.mark.parametrize("args, words", [
    (("eeg",), "KIND"), (("ecg", "--devices", "0"), "--devices"),
    (("ecg", "--duration", "soon"), "--duration"), (("ecg", "--rhythm", "torsade"), "rhythm"),
    (("bp", "--rhythm", "af"), "ecg only"), (("ecg", "--devices", "100000", "--duration",
                                              "1h"), "samples"),
    (("ecg", "--record", "/nonexistent/100"), "/nonexistent/100"),
])
def test_bad_input_is_one_line_and_exit_2(app: typer.Typer, tmp_path: Path, args: tuple,
                                          words: str) -> None:
    code, text = invoke(app, *args, "--out", str(tmp_path / "x.npz"))
    assert code == 2
    assert words in text
    assert not (tmp_path / "x.npz").exists()


@pytest.mark.skipif(not (MITDB / "101.hea").exists(), reason="MIT-BIH DS1 not here")
def test_replay_export(app: typer.Typer, tmp_path: Path) -> None:
    out = tmp_path / "r.npz"
    code, text = invoke(app, "ecg", "--devices", "1", "--duration", "10s", "--record",
                        str(MITDB / "101"), "--out", str(out))
    assert code == 0, text
    with np.load(out) as f:
        assert f["signal"].shape == (1, 2500) and len(f["beat_label"]) > 5
