"""The LiteRT adapter: one interpreter per model per process, invoked on whole fleet batches.

Model bytes are read once per path and shared (:func:`model_bytes`); each model gets one
interpreter per process (:func:`TinyModel.load` caches it). A batch is quantised with each
input's own scale and zero point, the interpreter is resized to the batch when its size
changes (rounded up to a multiple of :data:`BUCKET` so that fleets whose beat counts move a
little do not re-plan the tensor arena every window), invoked once per chunk (equal chunks of
at most :data:`MAX_BATCH` rows: a bound on the arena, about 80 MB for the ECG model, and one
size, so that a batch's last chunk does not re-plan the arena twice a call), and the outputs
are dequantised with their own parameters.

The runtime is ``ai_edge_litert`` (LiteRT, the renamed TensorFlow Lite runtime); the older
``tflite_runtime`` package is used only when LiteRT is not installed (ARCHITECTURE.md 5: it
fails with numpy 2 and is slower).
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from devices.tinyml.errors import InputError, ModelError

BUCKET = 256
"""Batches are padded up to a multiple of this many rows."""
MAX_BATCH = 16_384
"""Rows per invoke at most; larger batches are run in equal chunks no larger than this."""
QUANT_BLOCK = 131_072
"""Values quantised per pass (512 KB of float32 scratch): the four passes of
:meth:`Quant.quantise_into` then run in the core's cache, not through memory. On an AVX2
EPYC, 9.6 M values alone (the ECG deltas of a 10,000-device batch) took 14.3 ms in one
block and 7.6 ms in blocks of this size (8,192: 15.1 ms, 32,768: 9.2 ms); both ECG inputs
inside a fleet batch's run, 17.7 ms and 13.8 ms."""
MODELS = resources.files("devices.tinyml") / "models"


def chunks(rows: int) -> int:
    """How many invokes :meth:`TinyModel.run` makes for a batch of ``rows``."""
    return -(-rows // MAX_BATCH)


def _interpreter_class() -> Any:
    """LiteRT's Interpreter, or tflite_runtime's if only that is installed."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # pragma: no cover - depends on what is installed
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            raise ModelError("no TFLite runtime: pip install ai-edge-litert") from None
    return Interpreter


_DELEGATE_INFO = b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU."


@contextmanager
def _without_delegate_info() -> Iterator[None]:
    """Drop the line LiteRT's C++ logger writes to file descriptor 2 when it plans a model.

    ``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.`` appeared on every command that
    loads a model, and the runtime has no switch for it (the only one, running without the
    default delegate, makes the ECG model 3x slower: 0.23 against 0.07 us a beat). Whatever
    else reaches descriptor 2 meanwhile is written back unchanged once the block ends.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no descriptor 2 to borrow: leave it alone
        yield
        return
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            kept = b"".join(line for line in held.read().splitlines(keepends=True)
                            if not line.startswith(_DELEGATE_INFO))
            if kept:
                os.write(2, kept)


@cache
def model_bytes(path: str) -> bytes:
    """The bytes of a ``.tflite`` file, read once per process and shared.

    Raises:
        ModelError: the file is missing or unreadable.
    """
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ModelError(f"{path}: cannot read model ({exc.strerror})") from None


def model_path(name: str) -> str:
    """The path of a shipped model, e.g. ``model_path("ecg_beat")``."""
    return str(MODELS / f"{name}.tflite")


@dataclass(frozen=True)
class Quant:
    """One tensor's int8 quantisation: ``real = scale * (q - zero_point)``."""

    scale: float
    zero_point: int
    dtype: type[np.generic]

    def quantise(self, x: npt.NDArray[np.float32]) -> npt.NDArray[Any]:
        """Real values to the tensor's integer type (rounded, saturated)."""
        out: npt.NDArray[Any] = np.empty(np.shape(x), self.dtype)
        self.quantise_into(x, out)
        return out

    def quantise_into(self, x: npt.NDArray[np.float32], out: npt.NDArray[Any],
                      scratch: npt.NDArray[np.float32] | None = None) -> None:
        """:meth:`quantise` written into ``out`` (same shape, C-contiguous), in place: four
        passes over a float32 scratch block per :data:`QUANT_BLOCK` values (``scratch`` is
        reused if given), about 3x faster than the plain expression on fleet batches, where
        the conversion costs more than the ECG model's invoke."""
        if self.dtype == np.float32:
            np.copyto(out, x, casting="same_kind")
            return
        if not out.flags.c_contiguous:
            raise ValueError("quantise_into needs a C-contiguous out")
        info = np.iinfo(self.dtype)  # type: ignore[type-var]
        src, dst = np.ravel(x), out.reshape(-1)
        work = np.empty(QUANT_BLOCK, np.float32) if scratch is None else scratch
        block = min(QUANT_BLOCK, work.size)
        inv, zero = np.float32(1.0 / self.scale), np.float32(self.zero_point)
        for a in range(0, src.size, block):
            part = src[a:a + block]
            tmp = work[:part.size]
            np.multiply(part, inv, out=tmp, dtype=np.float32)
            tmp += zero
            np.clip(tmp, info.min, info.max, out=tmp)
            np.rint(tmp, out=tmp)
            np.copyto(dst[a:a + block], tmp, casting="unsafe")

    def dequantise(self, q: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
        """The tensor's integers back to real values."""
        if self.dtype == np.float32:
            return q.astype(np.float32)
        out: npt.NDArray[np.float32] = (
            (q.astype(np.float32) - self.zero_point) * np.float32(self.scale))
        return out


def _quant(detail: dict[str, Any]) -> Quant:
    scale, zero = detail["quantization"]
    return Quant(float(scale) or 1.0, int(zero), detail["dtype"])


class TinyModel:
    """One ``.tflite`` model with its interpreter, run on batches (rows first).

    Use :meth:`load` (cached per path): the interpreter is shared by every caller in the
    process, and calls are serialised by a lock.

    Args:
        path: the ``.tflite`` file.

    Raises:
        ModelError: the file is missing, or not a model LiteRT can load.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.data = model_bytes(path)
        try:
            self._interp = _interpreter_class()(model_content=self.data, num_threads=1)
            with _without_delegate_info():
                self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{path}: not a TFLite model LiteRT can load ({exc})") from None
        self._inputs = sorted(self._interp.get_input_details(), key=lambda d: d["name"])
        self._outputs = sorted(self._interp.get_output_details(), key=lambda d: d["name"])
        self.input_shapes = [tuple(int(v) for v in d["shape"][1:]) for d in self._inputs]
        self.input_names = [str(d["name"]) for d in self._inputs]
        self.output_names = [str(d["name"]) for d in self._outputs]
        self.output_shapes = [tuple(int(v) for v in d["shape"][1:]) for d in self._outputs]
        self.input_quant = [_quant(d) for d in self._inputs]
        self.output_quant = [_quant(d) for d in self._outputs]
        self._rows = int(self._inputs[0]["shape"][0])
        self._lock = threading.Lock()
        self._scratch = np.empty(QUANT_BLOCK, np.float32)  # reused by every quantisation

    @classmethod
    @cache
    def load(cls, path: str) -> TinyModel:
        """The process's one instance for ``path``."""
        return cls(path)

    @property
    def size_bytes(self) -> int:
        """The ``.tflite`` file's size."""
        return len(self.data)

    def run(self, *inputs: npt.NDArray[np.float32]) -> list[npt.NDArray[np.float32]]:
        """Run the model on a batch.

        Args:
            *inputs: one float array per model input (in :attr:`input_names` order, sorted by
                name), each ``(rows, *input_shape)`` with the same number of rows.

        Returns:
            The dequantised outputs (in :attr:`output_names` order), ``(rows, ...)`` each.

        Raises:
            InputError: wrong number of inputs, shapes, or differing row counts.
        """
        rows = self._check(inputs)
        if rows == 0:
            return [np.zeros((0, *d["shape"][1:]), np.float32) for d in self._outputs]
        size = -(-rows // chunks(rows))  # equal chunks: the arena keeps one size
        parts = [self._run_chunk([x[a:a + size] for x in inputs]) for a in range(0, rows, size)]
        return [np.concatenate([p[k] for p in parts]) for k in range(len(self._outputs))]

    def _check(self, inputs: tuple[npt.NDArray[np.float32], ...]) -> int:
        if len(inputs) != len(self._inputs):
            raise InputError(f"{self.path}: takes {len(self._inputs)} inputs, got {len(inputs)}")
        rows = {len(x) for x in inputs}
        if len(rows) != 1:
            raise InputError(f"{self.path}: inputs have different row counts {sorted(rows)}")
        for x, shape, name in zip(inputs, self.input_shapes, self.input_names, strict=True):
            if tuple(x.shape[1:]) != shape:
                raise InputError(f"{self.path}: input {name} must be (rows, "
                                 f"{', '.join(map(str, shape))}), got {x.shape}")
        return rows.pop()

    def _run_chunk(self, chunk: list[npt.NDArray[np.float32]]) -> list[npt.NDArray[np.float32]]:
        """Quantise, resize if needed, invoke once, dequantise (padding rows dropped)."""
        n = len(chunk[0])
        padded = -(-n // BUCKET) * BUCKET
        with self._lock:
            if padded != self._rows:
                for d, shape in zip(self._inputs, self.input_shapes, strict=True):
                    self._interp.resize_tensor_input(d["index"], [padded, *shape])
                self._interp.allocate_tensors()
                self._rows = padded
            for d, q, x in zip(self._inputs, self.input_quant, chunk, strict=True):
                # Straight into the interpreter's own input buffer (a view that must not
                # outlive this block): no padded copy and no set_tensor copy of the batch.
                view = self._interp.tensor(d["index"])()
                q.quantise_into(x, view[:n], self._scratch)
                view[n:] = q.zero_point if q.dtype != np.float32 else 0.0
                del view
            self._interp.invoke()
            return [q.dequantise(self._interp.get_tensor(d["index"])[:n])
                    for d, q in zip(self._outputs, self.output_quant, strict=True)]

    def invoke(self) -> None:
        """Invoke the interpreter once on the inputs it holds (benchmarks only)."""
        with self._lock:
            self._interp.invoke()

    def ops(self) -> list[dict[str, Any]]:
        """The model's operators with their tensors' shapes (for :mod:`devices.tinyml.energy`).

        Returns:
            One dict per op: ``op`` (name), ``inputs`` and ``outputs`` (lists of shapes for a
            batch of one row).
        """
        probe = _interpreter_class()(model_content=self.data, num_threads=1)
        with _without_delegate_info():
            probe.allocate_tensors()
        shapes = {int(t["index"]): [int(v) for v in t["shape"]]
                  for t in probe.get_tensor_details()}
        out = []
        for op in probe._get_ops_details():
            out.append({"op": str(op["op_name"]),
                        "inputs": [shapes.get(int(i), []) for i in op["inputs"] if i >= 0],
                        "outputs": [shapes.get(int(i), []) for i in op["outputs"]]})
        return out
