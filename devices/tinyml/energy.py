"""On-device latency and energy of a model, from its MAC count and an MCU profile.

The reference device is a Cortex-M4F at 64 MHz, the Nordic nRF52840 that many BLE wearables
use. Its datasheet (nRF52840 Product Specification v1.7, section 5.2, "CPU running CoreMark
from flash, DC/DC at 3 V") gives 3.3 mA, i.e. 52 uA/MHz: 3.0 V x 3.3 mA / 64 MHz = 0.155 nJ
per cycle. Int8 kernels in the style of CMSIS-NN (Lai, Suda & Chandra, arXiv:1801.06601,
2018) use the M4's dual 16-bit MAC (SMLAD, 2 MACs/cycle at best); with im2col, requantisation
and loads, about 1.5 cycles per MAC is what such kernels sustain on small 1-D convolutions,
plus a fixed cost per operator. Filtering and QRS detection before the model take about 40
cycles per input sample (two 2nd-order band-passes as biquads, a derivative, squaring and a
running sum). These are estimates for the twin's battery model, not measurements on silicon.

MACs are counted from the ``.tflite`` graph itself (:func:`count_macs`): convolutions,
depthwise convolutions and fully-connected layers, for one row of the batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import Any

from devices.tinyml.runtime import TinyModel


@dataclass(frozen=True)
class McuProfile:
    """An MCU's speed and energy for int8 inference.

    Attributes:
        name: what it models.
        clock_hz: core clock.
        energy_per_cycle_j: active energy per cycle (supply voltage x run current / clock).
        cycles_per_mac: sustained cycles per int8 multiply-accumulate.
        cycles_per_op: fixed cycles per operator (dispatch, requantisation set-up).
        cycles_per_sample: pre-processing cycles per input sample (filters, QRS detection).
    """

    name: str
    clock_hz: float
    energy_per_cycle_j: float
    cycles_per_mac: float
    cycles_per_op: float
    cycles_per_sample: float


CORTEX_M4_64MHZ = McuProfile(
    name="Cortex-M4F @ 64 MHz (nRF52840, 3.3 mA at 3.0 V from flash)",
    clock_hz=64e6, energy_per_cycle_j=3.0 * 3.3e-3 / 64e6, cycles_per_mac=1.5,
    cycles_per_op=500.0, cycles_per_sample=40.0,
)
"""The documented default profile (see the module docstring for the sources)."""


def _op_macs(op: dict[str, Any]) -> int:
    """MACs of one operator for one batch row (0 for ops that do no multiply-accumulate)."""
    name, ins, outs = op["op"], op["inputs"], op["outputs"]
    if not outs or len(ins) < 2:
        return 0
    out = outs[0]
    if name == "CONV_2D":
        return int(prod(out[1:]) * prod(ins[1][1:]))
    if name == "DEPTHWISE_CONV_2D":
        return int(prod(out[1:]) * prod(ins[1][1:3]))
    if name == "FULLY_CONNECTED":
        return int(prod(ins[1]))
    return 0


def count_macs(model: TinyModel) -> dict[str, int]:
    """Multiply-accumulates of one inference (one row) and the operator count.

    Returns:
        ``{"macs": ..., "ops": ...}``.
    """
    ops = model.ops()
    return {"macs": sum(_op_macs(op) for op in ops), "ops": len(ops)}


@dataclass(frozen=True)
class Cost:
    """Estimated cost of one window on the device.

    Attributes:
        cycles: total cycles (pre-processing and inferences).
        latency_s: wall time on the device at its clock.
        energy_mj: active energy (millijoules), for :meth:`devices.battery.Battery.spend_mj`.
    """

    cycles: float
    latency_s: float
    energy_mj: float


def window_cost(macs: int, ops: int, inferences: float, samples: int,
                profile: McuProfile = CORTEX_M4_64MHZ) -> Cost:
    """What one window costs the device.

    Args:
        macs: MACs of one inference (:func:`count_macs`).
        ops: operators in the graph.
        inferences: inferences in the window (e.g. beats for a per-beat model; may be an
            array-like mean).
        samples: input samples pre-processed in the window.
        profile: the MCU.

    Returns:
        Cycles, latency and energy.
    """
    cycles = (inferences * (macs * profile.cycles_per_mac + ops * profile.cycles_per_op)
              + samples * profile.cycles_per_sample)
    return Cost(cycles, cycles / profile.clock_hz, cycles * profile.energy_per_cycle_j * 1e3)
