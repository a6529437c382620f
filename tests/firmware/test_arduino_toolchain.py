"""The firmware builds the way the Arduino mbed core builds it: GNU C99 (and the sketch as GNU C++14)
for Cortex-M4, with and without the DSP extension, and without ACLE intrinsics, which the core's GCC 7
may lack (``make -C firmware m4-gnu99``)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"

pytestmark = pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None, reason="needs arm-none-eabi-gcc (make install)"
)


def test_firmware_builds_as_gnu99_for_cortex_m4_with_and_without_dsp(tmp_path: Path) -> None:
    r = subprocess.run(
        ["make", "-s", "-C", str(FIRMWARE), "m4-gnu99", f"BUILD={tmp_path}"], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    objs = {
        v: {p.name: p.read_bytes() for p in (tmp_path / "gnu99" / v).glob("*.o")} for v in ("dsp", "nodsp")
    }
    names = {p.with_suffix(".o").name for p in (FIRMWARE / "src" / "runtime").glob("*.c")}
    names |= {"reds_app.o", "backend_native.o", "model_blob.o"}
    assert names <= objs["dsp"].keys() == objs["nodsp"].keys()
    # -U__ARM_FEATURE_DSP really selects the portable path: the kernels with a DSP variant compile differently
    differ = {n for n in objs["dsp"] if objs["dsp"][n] != objs["nodsp"][n]}
    assert "reds_depthwise_conv_s8.o" in differ, differ
    # The sketch's static buffers are what its model_blob.h says the model needs, not fixed sizes.
    header = (FIRMWARE / "nano33_reds" / "model_blob.h").read_text()
    need = {k: int(v) for k, v in re.findall(r"#define MODEL_BLOB_(MAX_\w+) (\d+)u", header)}
    cmd = ["arm-none-eabi-nm", "-S", "-C", str(tmp_path / "gnu99" / "sketch.o")]
    nm = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    sizes = {name: int(size, 16) for size, name in re.findall(r"(?m)^[0-9a-f]+ ([0-9a-f]+) [bB] (\w+)$", nm)}
    assert sizes["arena"] == need["MAX_SCRATCH"] + 1  # + 1: never a zero-length array
    assert (sizes["input_buf"], sizes["output_buf"]) == (need["MAX_IN"], need["MAX_OUT"])


def test_an_acle_include_fails_the_gnu99_build(tmp_path: Path) -> None:
    """The stand-in arm_acle.h that m4-gnu99 puts first on the include path stops any source using ACLE."""
    src = tmp_path / "uses_acle.c"
    src.write_text("#include <arm_acle.h>\nint f(int a, int b) { return __smlabb(a, b, 0); }\n")
    no_acle = FIRMWARE / "tests" / "no_acle"
    cmd = ["arm-none-eabi-gcc", "-std=gnu99", "-mcpu=cortex-m4", "-mthumb", f"-I{no_acle}"]
    r = subprocess.run([*cmd, "-c", str(src), "-o", str(tmp_path / "x.o")], capture_output=True, text=True)
    assert r.returncode != 0 and "use inline asm" in r.stderr
