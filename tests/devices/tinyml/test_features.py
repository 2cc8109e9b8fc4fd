"""The batch feature pipeline's FFT filters against scipy's forward-backward filter."""

from __future__ import annotations

import numpy as np
from scipy import signal as sps

from devices.physiology import CohortParams, EcgSource
from devices.tinyml.features import FS, band_pass, extract, to_model_rate
from twin.core.seeds import SeedTree


def _pvc_windows(n: int = 8) -> np.ndarray:
    return EcgSource(n, CohortParams(), SeedTree(3), rhythm="pvc").window(
        10.0, np.arange(n)).signal


def test_fft_band_pass_equals_sosfiltfilt_away_from_the_edges() -> None:
    x = _pvc_windows()
    clean, band = band_pass(to_model_rate(x, FS))
    for band_hz, got, tol in (([0.5, 40.0], clean, 5e-3), ([5.0, 15.0], band, 1e-5)):
        sos = sps.butter(2, band_hz, btype="bandpass", fs=FS, output="sos")
        ref = sps.sosfiltfilt(sos, x.astype(np.float64), axis=1)
        inner = slice(int(2 * FS), -int(2 * FS))
        err = np.abs(got[:, inner] - ref[:, inner]).max() / np.abs(ref).max()
        assert err < tol, (band_hz, err)


def test_chunked_extraction_equals_one_pass() -> None:
    x = _pvc_windows(300)  # more rows than one chunk
    whole = extract(x, FS)
    parts = [extract(x[:150], FS), extract(x[150:], FS)]
    assert np.array_equal(whole.row, np.concatenate([parts[0].row, parts[1].row + 150]))
    assert np.array_equal(whole.sample, np.concatenate([p.sample for p in parts]))
    assert np.allclose(whole.segment, np.concatenate([p.segment for p in parts]))
