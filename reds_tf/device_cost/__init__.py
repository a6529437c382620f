"""Device cost model: predicted Cortex-M4 cycles, milliseconds and millijoules of a width plan.

``load("dsp")`` reads the fitted per-kernel model of the SIMD build (``"portable"``: the plain C
build); ``python -m reds_tf.device_cost fit`` re-measures the kernels in the emulator and refits it
(source checkout only). ``power`` turns cycles into time and energy on the nRF52840. No TensorFlow.
"""

from __future__ import annotations

from .model import FEATURES, TARGETS, CostModel, kernel_kind, load
from .power import NRF52840, PowerModel

__all__ = ["FEATURES", "TARGETS", "CostModel", "NRF52840", "PowerModel", "kernel_kind", "load"]
