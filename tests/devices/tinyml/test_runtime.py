"""The LiteRT adapter: shared bytes, one interpreter, quantisation, batching, bad models."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from devices.tinyml.energy import CORTEX_M4_64MHZ, count_macs, window_cost
from devices.tinyml.errors import InputError, ModelError
from devices.tinyml.runtime import (
    BUCKET,
    MAX_BATCH,
    QUANT_BLOCK,
    Quant,
    TinyModel,
    _without_delegate_info,
    model_bytes,
    model_path,
)

MODELS = ("ecg_beat_af", "vitals_bp", "vitals_sweat")


@pytest.mark.parametrize("name", MODELS)
def test_shipped_models_are_int8_and_mcu_sized(name: str) -> None:
    tiny = TinyModel.load(model_path(name))
    assert tiny.size_bytes <= 32 * 1024
    assert all(q.dtype == np.int8 for q in tiny.input_quant + tiny.output_quant)
    assert Path(model_path(name)).with_suffix(".md").exists()  # its model card


def test_model_is_loaded_once_per_process() -> None:
    a = TinyModel.load(model_path("vitals_bp"))
    b = TinyModel.load(model_path("vitals_bp"))
    assert a is b
    assert a.data is model_bytes(model_path("vitals_bp"))


def test_quant_round_trip_saturates() -> None:
    q = Quant(0.1, -3, np.int8)
    x = np.array([0.0, 1.0, -1.0, 100.0, -100.0], np.float32)
    back = q.dequantise(q.quantise(x))
    assert np.allclose(back[:3], x[:3], atol=0.05)
    assert back[3] == pytest.approx(0.1 * (127 + 3)) and back[4] == pytest.approx(-12.5)


def test_quantising_in_cache_sized_blocks_equals_the_one_pass_expression() -> None:
    q = Quant(0.02, 5, np.int8)
    x = np.random.default_rng(2).normal(0.0, 1.5, (3 * QUANT_BLOCK // 80 + 3, 80)).astype(
        np.float32)  # more than three blocks, the last one short
    want = np.clip(np.rint(x * np.float32(1 / 0.02) + 5), -128, 127).astype(np.int8)
    out = np.empty(x.shape, np.int8)
    q.quantise_into(x, out, np.empty(QUANT_BLOCK, np.float32))
    assert np.array_equal(out, want)
    assert np.array_equal(q.quantise(x[:, ::2]), want[:, ::2])  # a strided input is copied
    with pytest.raises(ValueError, match="C-contiguous"):
        q.quantise_into(x[:, :4], np.empty((len(x), 8), np.int8)[:, ::2])


def test_batches_of_any_size_give_the_same_rows() -> None:
    tiny = TinyModel.load(model_path("vitals_sweat"))
    x = np.random.default_rng(0).normal(0.5, 0.3, (BUCKET + 7, 8)).astype(np.float32)
    whole = tiny.run(x)[0]
    ones = np.concatenate([tiny.run(x[i:i + 1])[0] for i in range(5)])
    assert np.array_equal(whole[:5], ones)
    assert tiny.run(x[:0])[0].shape == (0, whole.shape[1])


def test_large_batches_run_in_chunks() -> None:
    tiny = TinyModel.load(model_path("vitals_bp"))
    x = np.random.default_rng(1).normal(1.0, 0.2, (MAX_BATCH + 3, 6)).astype(np.float32)
    out = tiny.run(x)[0]
    assert out.shape[0] == MAX_BATCH + 3
    assert np.array_equal(out[-3:], tiny.run(x[-3:])[0])
    assert np.array_equal(out[:5], tiny.run(x[:5])[0])


def test_wrong_inputs_raise_input_error() -> None:
    tiny = TinyModel.load(model_path("vitals_bp"))
    with pytest.raises(InputError, match="must be"):
        tiny.run(np.zeros((4, 5), np.float32))
    with pytest.raises(InputError, match="takes 1 inputs"):
        tiny.run(np.zeros((4, 6), np.float32), np.zeros((4, 6), np.float32))


def test_missing_and_corrupt_models_raise_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="cannot read"):
        TinyModel(str(tmp_path / "absent.tflite"))
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"TFL3 not really a model")
    with pytest.raises(ModelError, match="not a TFLite model"):
        TinyModel(str(bad))


def test_macs_and_cost_follow_the_profile() -> None:
    macs = count_macs(TinyModel.load(model_path("ecg_beat_af")))
    assert 1_000 < macs["macs"] < 200_000 and macs["ops"] > 3
    one = window_cost(macs["macs"], macs["ops"], 1, 0)
    twelve = window_cost(macs["macs"], macs["ops"], 12, 2500)
    assert twelve.cycles > 12 * one.cycles
    assert one.latency_s == pytest.approx(one.cycles / CORTEX_M4_64MHZ.clock_hz)
    assert twelve.energy_mj == pytest.approx(
        twelve.cycles * CORTEX_M4_64MHZ.energy_per_cycle_j * 1e3)


def test_loading_a_model_prints_no_delegate_line(capfd: pytest.CaptureFixture[str]) -> None:
    TinyModel(model_path("ecg_beat_af"))  # a fresh interpreter, not the cached one
    assert "XNNPACK" not in capfd.readouterr().err


def test_other_native_output_is_written_back(capfd: pytest.CaptureFixture[str]) -> None:
    with _without_delegate_info():
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\nERROR: kept\n")
    assert capfd.readouterr().err == "ERROR: kept\n"
