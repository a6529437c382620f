"""Time and energy of an inference from its cycles: a constant-power model of a Cortex-M4 MCU.

Energy = time * (supply voltage * CPU run current + optional board idle power). Defaults are the
nRF52840's (Nordic nRF52840 Product Specification v1.7, section "CPU": running from flash with the
cache on at 64 MHz, regulator in DC/DC mode, 3.0 V supply: 3.3 mA, i.e. about 52 uA/MHz). The board
(an Arduino Nano 33 BLE's regulator, LED, sensors) draws more; pass its measured idle power as
``idle_mw`` to include it. The CPU current is constant per cycle here, so energy is proportional to
cycles: an energy budget is a cycle budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class PowerModel:
    """Clock, supply and currents of the device."""

    clock_mhz: float = 64.0
    supply_v: float = 3.0
    cpu_ma: float = 3.3
    idle_mw: float = 0.0

    def __post_init__(self) -> None:
        for name in ("clock_mhz", "supply_v", "cpu_ma"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
                raise ValueError(f"PowerModel.{name} must be a finite number > 0. Received: {name}={v!r}")
        if not (math.isfinite(self.idle_mw) and self.idle_mw >= 0):
            raise ValueError(
                f"PowerModel.idle_mw must be a finite number >= 0. Received: idle_mw={self.idle_mw!r}"
            )

    @property
    def power_mw(self) -> float:
        """Power while an inference runs (mW)."""
        return self.supply_v * self.cpu_ma + self.idle_mw

    def ms(self, cycles: float) -> float:
        return cycles / (self.clock_mhz * 1e3)

    def mj(self, cycles: float) -> float:
        return self.ms(cycles) * self.power_mw / 1e3

    def cycles_for_ms(self, ms: float) -> int:
        """The most whole cycles that fit in ``ms`` milliseconds."""
        return math.floor(ms * self.clock_mhz * 1e3)

    def cycles_for_mj(self, mj: float) -> int:
        """The most whole cycles whose energy fits in ``mj`` millijoules."""
        return math.floor(mj * 1e3 / self.power_mw * self.clock_mhz * 1e3)


NRF52840 = PowerModel()
