"""Executed Cortex-M4 instructions and estimated cycles of the reds runtime, counted in unicorn.

Builds the firmware four ways (``make -C firmware m4``: arm-none-eabi-gcc -mcpu=cortex-m4 -mthumb
-mfloat-abi=hard at -O2 and at -Os -- what the Arduino core uses --, each with the SIMD kernels the DSP
extension enables and with the portable C kernels, ``M4_DEFS=-DREDS_PORTABLE``), loads each ``bench.elf``
into unicorn (Cortex-M4 CPU model) and counts executed instructions per translated block. Cycles are an
estimate from a documented Cortex-M4 timing model (``CortexM4Timing``: loads, stores, multiplies, divides,
branches; zero-wait-state memory), with the latency at 64 MHz (nRF52840) beside it:

* kernels: each DS-CNN-S (KWS) layer kernel at several channel widths, reading a full-width weight tensor
  through its strides as a nested level does, and the 28x28 DS-CNN shapes next to Arm's CMSIS-NN counted
  in the same emulator (``CMSIS_NN``);
* models: nested DS-CNN on 28x28 (the default recipe's ``ds_cnn_fmnist``), DS-CNN-S (KWS, zoo
  ``ds_cnn_s``, printed beside the MLPerf Tiny KWS peers in cycles/MAC) and the 2-layer FC (zoo ``fc2``)
  with REDS levels (the knapsack solver's plan for MAC budgets 25/50/75 % plus the full model, on
  magnitude scores of the seeded model after sorting its units) and, with ``--levels reds,uniform``,
  uniform width multipliers, converted per level to int8 .tflite, quantised once from the widest level
  (``reds_tf.convert.quantize.share_weights``) and packed into one device blob with one shared weight
  arena (``reds_tf.convert.c_arena``); for every level and build, ``reds_set_level`` (switching) and
  ``reds_invoke`` (one inference) next to the level's MAC fraction.
  Every emulated inference of every build is checked bit-exact against the tflite-micro interpreter.

Targets (issue 7): switching <= 64 instructions; inference instructions within +-15 % of proportional
to MACs across levels (ratio = instruction fraction / MAC fraction of the widest level), on -O2 DSP.

    python benchmarks/mcu_cycles.py                 # kernels + the three models
    python benchmarks/mcu_cycles.py --only kernels  # no TensorFlow needed
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from elftools.elf.elffile import ELFFile
from unicorn import UC_ARCH_ARM, UC_HOOK_BLOCK, UC_MODE_MCLASS, UC_MODE_THUMB, Uc
from unicorn.arm_const import (
    UC_ARM_REG_LR,
    UC_ARM_REG_PC,
    UC_ARM_REG_R0,
    UC_ARM_REG_R1,
    UC_ARM_REG_R2,
    UC_ARM_REG_R3,
    UC_ARM_REG_SP,
    UC_CPU_ARM_CORTEX_M4,
)

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE = ROOT / "firmware"
FLASH, FLASH_SIZE = 0x00000000, 0x01000000
RAM, RAM_SIZE = 0x20000000, 0x00800000
BLOB_ADDR = 0x00800000  # constant blob placed in flash, as on the device
STOP = 0x00FFFFF0  # return address: emulation stops when the callee returns here
SWITCH_TARGET = 64
PROPORTIONAL_TOL = 0.15


# ---------------------------------------------------------------- timing model
_COND = "(?:eq|ne|cs|hs|cc|lo|mi|pl|vs|vc|hi|ls|ge|lt|gt|le|al)?"
_BRANCH = re.compile(f"(?:b|bl|bx|blx){_COND}|cbn?z|tb[bh]")
_MEM = re.compile(f"(?:ldr|str)(?:b|h|sb|sh|ex|exb|exh)?{_COND}")
_MEM2 = re.compile(f"(?:ldrd|strd){_COND}")
_MULTI = re.compile(f"(?:ldm|stm)(?:ia|db|fd|ea)?{_COND}|push|pop")
_DIV = re.compile(f"[su]div{_COND}")
MHZ = 64  # nRF52840 (Arduino Nano 33 BLE)


class CortexM4Timing:
    """Estimated cycles of each instruction of an ELF, after the Cortex-M4 TRM (r0p1, table 3-1).

    Model (zero-wait-state flash and RAM, as the nRF52840 at 64 MHz with its cache):
    * data processing, shifts, compares, IT, MOV, and every multiply / multiply-accumulate (MUL, MLA,
      SMULL, SMLAL, SMLABB, SMLAD, SMMULR: the M4's single-cycle MAC unit): 1;
    * single loads and stores (LDR, LDRB, LDRSB, STR, ...): 2, but 1 right after another load or store
      in the same basic block (the TRM's pipelined neighbouring loads/stores);
    * LDRD / STRD: 3; LDM / STM / PUSH / POP: 1 + registers;
    * SDIV / UDIV: 12 (the TRM's worst case; 2-12 depending on the operands);
    * branches (B, BL, BX, CBZ, TBB, POP/LDM/LDR into PC): 1, plus P = 2 pipeline-refill cycles when
      taken (the TRM gives 1-3); a taken branch is one followed by a block that does not start where
      the branch's block ends. Conditional instructions skipped by IT still cost 1.
    """

    REFILL = 2

    def __init__(self, elf_path: Path) -> None:
        text = subprocess.run(
            ["arm-none-eabi-objdump", "-d", "--no-show-raw-insn", str(elf_path)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        #: address -> (cycles, is load/store, may branch)
        self.insn: dict[int, tuple[int, bool, bool]] = {}
        for line in text.splitlines():
            m = re.match(r"\s+([0-9a-f]+):\t(\S+)\s*(.*)", line)
            if m and not m.group(2).startswith("."):
                self.insn[int(m.group(1), 16)] = self._classify(m.group(2).split(".")[0], m.group(3))

    @staticmethod
    def _classify(mn: str, ops: str) -> tuple[int, bool, bool]:
        writes_pc = bool(re.match(r"pc\b", ops)) or "pc}" in ops.replace(" ", "")
        if _BRANCH.fullmatch(mn):
            return 1, False, True
        if _MEM2.fullmatch(mn):
            return 3, True, False
        if _MULTI.fullmatch(mn):
            regs = 0
            for part in ops[ops.find("{") + 1 : ops.find("}")].split(","):
                lo, _, hi = part.strip().partition("-")
                regs += int(hi[1:]) - int(lo[1:]) + 1 if hi else 1
            return 1 + regs, False, writes_pc
        if _MEM.fullmatch(mn):
            return 2, True, writes_pc
        if _DIV.fullmatch(mn):
            return 12, False, False
        return 1, False, writes_pc

    def block(self, address: int, size: int) -> tuple[int, int, bool]:
        """(instructions, cycles without a final taken-branch refill, ends in a branch) of a block."""
        n = cycles = 0
        prev_mem = ends_branch = False
        for a in range(address, address + size, 2):
            info = self.insn.get(a)
            if info is None:  # second halfword of a 32-bit instruction
                continue
            c, mem, br = info
            cycles += 1 if mem and prev_mem and c == 2 else c
            prev_mem, ends_branch = mem, br
            n += 1
        return n, cycles, ends_branch


# ---------------------------------------------------------------- emulator
class M4:
    """A Cortex-M4 in unicorn with the bench image loaded; `call` returns (r0, instructions) and leaves the
    estimated cycles of the call in `cycles`."""

    def __init__(self, elf_path: Path) -> None:
        self.uc = Uc(UC_ARCH_ARM, UC_MODE_THUMB | UC_MODE_MCLASS)
        self.uc.ctl_set_cpu_model(UC_CPU_ARM_CORTEX_M4)
        self.uc.mem_map(FLASH, FLASH_SIZE)
        self.uc.mem_map(RAM, RAM_SIZE)
        with open(elf_path, "rb") as f:
            elf = ELFFile(f)
            for seg in elf.iter_segments():
                if seg["p_type"] == "PT_LOAD" and seg["p_filesz"]:
                    self.uc.mem_write(seg["p_paddr"], seg.data())
            self.sym = {s.name: s["st_value"] for s in elf.get_section_by_name(".symtab").iter_symbols()}
        self.uc.mem_write(STOP, b"\x00\xbf\x00\xbf")  # nop; never executed, emu stops at STOP
        self.timing = CortexM4Timing(elf_path)
        self._heap = RAM
        self._blocks: dict[tuple[int, int], tuple[int, int, bool]] = {}
        self.count = self.cycles = 0
        self._prev_end, self._prev_branch = -1, False
        self.uc.hook_add(UC_HOOK_BLOCK, self._on_block)

    def _on_block(self, uc: Uc, address: int, size: int, _user: object) -> None:
        info = self._blocks.get((address, size))
        if info is None:
            info = self._blocks[(address, size)] = self.timing.block(address, size)
        if self._prev_branch and address != self._prev_end:
            self.cycles += CortexM4Timing.REFILL
        self.count += info[0]
        self.cycles += info[1]
        self._prev_end, self._prev_branch = address + size, info[2]

    def alloc(self, data: bytes | int) -> int:
        """Reserve RAM (8-byte aligned); write `data` when bytes are given. Returns the address."""
        n = data if isinstance(data, int) else len(data)
        addr = self._heap
        self._heap = (self._heap + n + 7) & ~7
        if self._heap > RAM + RAM_SIZE - 0x10000:
            raise MemoryError(f"emulator RAM exhausted allocating {n} bytes")
        if not isinstance(data, int):
            self.uc.mem_write(addr, bytes(data))
        return addr

    def reset_heap(self) -> None:
        self._heap = RAM

    def read(self, addr: int, n: int) -> bytes:
        return bytes(self.uc.mem_read(addr, n))

    def call(self, name: str, *args: int) -> tuple[int, int]:
        """AAPCS call: r0-r3, then the stack; returns (signed r0, executed instructions)."""
        sp = RAM + RAM_SIZE - 0x100
        stack_args = [a & 0xFFFFFFFF for a in args[4:]]
        sp -= 4 * len(stack_args)
        sp &= ~7
        for i, a in enumerate(stack_args):
            self.uc.mem_write(sp + 4 * i, a.to_bytes(4, "little"))
        for reg, a in zip(
            (UC_ARM_REG_R0, UC_ARM_REG_R1, UC_ARM_REG_R2, UC_ARM_REG_R3), args[:4], strict=False
        ):
            self.uc.reg_write(reg, a & 0xFFFFFFFF)
        self.uc.reg_write(UC_ARM_REG_SP, sp)
        self.uc.reg_write(UC_ARM_REG_LR, STOP | 1)
        self.count = self.cycles = 0
        self._prev_end, self._prev_branch = -1, False
        self.uc.emu_start(self.sym[name] | 1, STOP)
        if self.uc.reg_read(UC_ARM_REG_PC) != STOP:
            raise RuntimeError(f"{name} did not return to the stop address")
        if self._prev_branch:  # the return itself
            self.cycles += CortexM4Timing.REFILL
        r0 = self.uc.reg_read(UC_ARM_REG_R0)
        return (r0 - (1 << 32) if r0 & 0x80000000 else r0), self.count


#: the four builds, side by side: (label, optimisation, portable C kernels instead of the SIMD ones)
VARIANTS = (
    ("-O2 DSP", "-O2", False),
    ("-O2 C", "-O2", True),
    ("-Os DSP", "-Os", False),
    ("-Os C", "-Os", True),
)
PRIMARY = VARIANTS[0][0]  # the build the targets are checked on


def build(build_dir: Path, opt: str = "-O2", portable: bool = False) -> Path:
    """`make -C firmware m4` into build_dir; returns the bench ELF."""
    args = [f"BUILD={build_dir}", f"M4_OPT={opt}"] + (["M4_DEFS=-DREDS_PORTABLE"] if portable else [])
    subprocess.run(["make", "-s", "-C", str(FIRMWARE), "m4", *args], check=True)
    return build_dir / "m4" / "bench.elf"


def build_all(build_root: Path) -> dict[str, M4]:
    """Every build of VARIANTS, loaded into its own emulator."""
    return {
        label: M4(build(build_root / f"m4{opt}{'-portable' if portable else ''}", opt, portable))
        for label, opt, portable in VARIANTS
    }


def size_report(build_dir: Path) -> str:
    objs = sorted(str(p) for p in (build_dir / "m4").glob("*.o"))
    return subprocess.run(
        ["arm-none-eabi-size", "-t", *objs], capture_output=True, text=True, check=True
    ).stdout


# ---------------------------------------------------------------- kernels at several widths
def _same(in_size: int, k: int, s: int) -> tuple[int, int]:
    out = (in_size + s - 1) // s
    return out, max(((out - 1) * s + k - in_size) // 2, 0)


#: Arm CMSIS-NN int8 kernels (what TFLM uses on Arm) on the 28x28 DS-CNN shapes, executed instructions per
#: MAC in this emulator at (-O2, -Os) (issue 10; ../shared/docs/toolchain-notes.md), keyed like KERNELS_28.
CMSIS_NN = {
    "conv 3x3 s2 (1->64)": (7.71, 9.55),
    "depthwise 3x3 (64)": (7.93, 9.84),
    "pointwise 64->64": (2.07, 2.35),
    "pointwise 19->35": (4.04, 4.68),
    "fully connected 64->10": (2.91, 3.88),
    "ds_cnn_fmnist full level": (2.96, 3.51),
}


def _run_variants(m4s: dict[str, M4], fn: str, make_args, out_addr_len) -> dict:
    """One kernel call in every build; outputs must agree across builds (SIMD vs portable, -O2 vs -Os)."""
    res, first = {}, None
    for label, m4 in m4s.items():
        m4.reset_heap()
        args, (out, n_out) = make_args(m4), out_addr_len
        status, n = m4.call(fn, *args)
        if status != 0:
            raise RuntimeError(f"{fn} returned status {status} in the {label} build")
        got = m4.read(out(m4), n_out)
        if first is None:
            first = got
        elif got != first:
            raise RuntimeError(f"{fn}: the {label} build's output differs from the {next(iter(m4s))} build's")
        res[label] = (n, m4.cycles)
    return res


def _kernel_cases(full: int, c: int, kws: bool):
    """(name, bench fn, buffer sizes, shape args, MACs, output bytes) of one width."""
    if kws:  # DS-CNN-S (KWS): 49x10 input, conv 10x4 s2 SAME -> 25x5, DW 3x3, PW, mean, FC 12
        oh, ph = _same(49, 10, 2)
        ow, pw = _same(10, 4, 2)
        conv_in, conv_k, n_cls = (49, 10), (10, 4), 12
    else:  # DS-CNN on 28x28: conv 3x3 s2 SAME -> 14x14, FC 10
        oh, ph = _same(28, 3, 2)
        ow, pw = _same(28, 3, 2)
        conv_in, conv_k, n_cls = (28, 28), (3, 3), 10
    px = oh * ow
    k = conv_k[0] * conv_k[1]
    return [
        (
            f"conv {conv_k[0]}x{conv_k[1]} s2 (1->{c})",
            "bench_conv",
            full * k,
            conv_in[0] * conv_in[1],
            (*conv_in, 1, c, *conv_k, 2, ph, pw, oh, ow, 1),
            px * k * c,
            px * c,
        ),
        (
            f"depthwise 3x3 ({c})",
            "bench_dw",
            9 * full,
            px * c,
            (oh, ow, c, c, 3, 3, 1, 1, 1, oh, ow, full),
            px * 9 * c,
            px * c,
        ),
        (
            f"pointwise {c}->{c}",
            "bench_conv",
            full * full,
            px * c,
            (oh, ow, c, c, 1, 1, 1, 0, 0, oh, ow, full),
            px * c * c,
            px * c,
        ),
        (f"fully connected {c}->{n_cls}", "bench_fc", n_cls * full, c, (c, n_cls, full), n_cls * c, n_cls),
    ]


def kernel_rows(m4s: dict[str, M4], full: int = 64, fractions=(0.25, 0.5, 0.75, 1.0)) -> list[dict]:
    """DS-CNN-S (KWS) layer kernels per width, then the 28x28 DS-CNN shapes CMSIS-NN was counted on."""
    rows = []
    plan = [("DS-CNN-S 49x10", max(1, round(full * f)), True) for f in fractions]
    plan += [("DS-CNN 28x28", full, False)]
    for shape, c, kws in plan:
        cases = _kernel_cases(full, c, kws)
        if not kws:  # a REDS-level-like narrow pointwise: 19 -> 35 channels of a 64-wide tensor
            cases.insert(
                3,
                (
                    "pointwise 19->35",
                    "bench_conv",
                    full * full,
                    14 * 14 * 19,
                    (14, 14, 19, 35, 1, 1, 1, 0, 0, 14, 14, full),
                    14 * 14 * 19 * 35,
                    14 * 14 * 35,
                ),
            )
        for name, fn, w_len, x_len, shape_args, macs, n_out in cases:
            rng = np.random.default_rng(len(rows))
            w = rng.integers(-128, 128, w_len, dtype=np.int8).tobytes()
            x = rng.integers(-128, 128, x_len, dtype=np.int8).tobytes()
            addrs: dict[str, int] = {}

            def make_args(m4: M4, w=w, x=x, fn=fn, shape_args=shape_args, n_out=n_out, addrs=addrs):
                wa, xa, out = m4.alloc(w), m4.alloc(x), m4.alloc(n_out + 8)
                addrs["out"] = out
                if fn == "bench_fc":
                    return (wa, xa, out, *shape_args)
                return (wa, xa, out, m4.alloc(np.array(shape_args, np.int32).tobytes()))

            res = _run_variants(m4s, fn, make_args, (lambda _m4, addrs=addrs: addrs["out"], n_out))
            rows.append(
                dict(
                    shape=shape,
                    kernel=name,
                    width=c,
                    macs=macs,
                    **{lbl: dict(instructions=n, cycles=cy) for lbl, (n, cy) in res.items()},
                )
            )
    return rows


# ---------------------------------------------------------------- models, per level
REDS_BUDGETS = (0.25, 0.5, 0.75)  # MACs fractions of the REDS levels below the full model


def _seeded_model(name: str, seed: int):
    from reds_tf import zoo
    from reds_tf._keras import keras

    keras.utils.set_random_seed(seed)
    kwargs = {"dropout": False} if name.startswith("ds_cnn") else {}
    return zoo.build(name, **kwargs)


def reds_plan(name: str, seed: int = 0):
    """REDS levels: the knapsack solver's plan on magnitude scores of the seeded, sorted model.

    Returns (sorted model, WidthPlan): units permuted by descending L1 magnitude
    (``permute.sort_model``), widths from ``solve.solve(graph, sorted_scores, budgets=[0.25, 0.5,
    0.75], include_full=True)``, i.e. exact per-level MAC budgets, as the REDS pipeline does.
    """
    from reds_tf import importance, permute, solve, topology

    model = _seeded_model(name, seed)
    sorted_model, sorted_scores = permute.sort_model(model, importance.magnitude_scores(model))
    graph = topology.graph_of(sorted_model)
    report = solve.solve(graph, sorted_scores, budgets=list(REDS_BUDGETS), include_full=True)
    return sorted_model, report.plan


def uniform_plan(name: str, fractions: tuple[float, ...], seed: int = 0):
    """Uniform width multipliers (every group at the same fraction of its width): NOT REDS levels."""
    from reds_tf import topology
    from reds_tf.plan import WidthPlan

    model = _seeded_model(name, seed)
    graph = topology.graph_of(model)
    full = graph.full_widths
    widths = [tuple(max(1, round(f * w)) for w in full) for f in fractions]
    return model, WidthPlan(groups=graph.group_names, full=full, widths=tuple(widths))


def _level_tflites(model, plan, out_dir: Path, seed: int = 0) -> list[Path]:
    """Plain model + plan -> nested model -> per-level plain models -> int8 .tflite (the converter's step)."""
    from reds_tf import nested
    from reds_tf.convert.flatbuffer import pack_model, read_tflite
    from reds_tf.convert.quantize import share_weights
    from reds_tf.convert.tflite import convert_int8

    nm = nested.make_nested(model, plan)
    n_levels = len(plan.widths)
    shape = tuple(model.input_shape[1:])
    calib = np.random.default_rng(seed).normal(0, 1, (64, *shape)).astype(np.float32)
    levels = [
        read_tflite(convert_int8(nested.extract_level(nm, k), calib, samples=64)) for k in range(n_levels)
    ]
    paths = []
    for k, lv in enumerate(levels):
        if k < len(levels) - 1:  # quantise once: reuse the widest level's int8 weights (the converter's step)
            share_weights(levels[-1], lv, f"level {k}")
        p = out_dir / f"level{k}.tflite"
        p.write_bytes(pack_model(lv))
        paths.append(p)
    return paths


def _tflm_output(tflite: Path, x: np.ndarray) -> np.ndarray:
    from tflite_micro import runtime

    it = runtime.Interpreter.from_bytes(tflite.read_bytes(), arena_size=256 * 1024)
    it.set_input(x, 0)
    it.invoke()
    return np.array(it.get_output(0)).reshape(-1)


def model_rows(m4s: dict[str, M4], name: str, levels: str, model, plan, work: Path) -> list[dict]:
    """Switch + inference counts per level of `plan` on `model` in every build; `levels` labels the table."""
    return level_rows(m4s, name, levels, _level_tflites(model, plan, work), plan.widths, work)


def run_dir_rows(m4s: dict[str, M4], run_dir: Path, work: Path) -> list[dict]:
    """The per-level .tflite files a `reds run` converted (trained model, solver plan from Taylor scores)."""
    from reds_tf.plan import WidthPlan

    paths = sorted((run_dir / "converted").glob("submodel_*.tflite"), key=lambda p: int(p.stem.split("_")[1]))
    if not paths:
        raise SystemExit(f"--run-dir {run_dir}: no converted/submodel_*.tflite. Fix: finish `reds run`.")
    plan = WidthPlan.load(run_dir / "plan.json")
    return level_rows(m4s, run_dir.name, "run", paths, plan.widths, work)


def _level_counts(m4: M4, blob: bytes, info: dict, inputs: list[np.ndarray]) -> list[dict]:
    """Init once, then per level: switch, one inference; outputs returned for the bit-exact check."""
    m4.reset_heap()
    m4.uc.mem_write(BLOB_ADDR, blob)
    model = m4.alloc(4096)  # sizeof(reds_model) is well below this
    status, init_n = m4.call("reds_model_init", model, BLOB_ADDR, len(blob))
    if status != 0:
        raise RuntimeError(f"reds_model_init returned {status}")
    hdr = info["header"]
    scratch_len = max(hdr["max_scratch"], 4)
    scratch = m4.alloc(scratch_len)
    inp, out = m4.alloc(hdr["max_in"]), m4.alloc(hdr["max_out"])
    res = []
    for k, lv in enumerate(info["levels"]):
        status, switch_n = m4.call("reds_set_level", model, k)
        if status != 0:
            raise RuntimeError(f"reds_set_level({k}) returned {status}")
        m4.uc.mem_write(inp, inputs[k].tobytes())
        status, infer_n = m4.call("reds_invoke", model, inp, out, scratch, scratch_len)
        if status != 0:
            raise RuntimeError(f"reds_invoke at level {k} returned {status}")
        res.append(
            dict(
                switch_instructions=switch_n,
                instructions=infer_n,
                cycles=m4.cycles,
                init_instructions=init_n,
                out=np.frombuffer(m4.read(out, lv["out_bytes"]), np.int8),
            )
        )
    return res


def level_rows(
    m4s: dict[str, M4], name: str, levels: str, paths: list[Path], widths, work: Path
) -> list[dict]:
    """Pack the per-level .tflite files into one blob; count switching and inference per level and build.
    Top-level counts are the PRIMARY build's (the targets); `variants` holds every build's."""
    from reds_tf.convert import c_arena

    c_arena.write(paths, work, "model")
    blob = (work / "model.blob").read_bytes()
    info = c_arena.read_blob(blob)
    rng = np.random.default_rng(1)
    inputs = [rng.integers(-128, 128, lv["in_bytes"], dtype=np.int8) for lv in info["levels"]]
    want = [_tflm_output(p, x.reshape(1, *_in_shape(p))) for p, x in zip(paths, inputs, strict=True)]
    counts = {label: _level_counts(m4, blob, info, inputs) for label, m4 in m4s.items()}
    rows = []
    for k, lv in enumerate(info["levels"]):
        variants = {
            label: dict(
                instructions=c[k]["instructions"],
                cycles=c[k]["cycles"],
                switch_instructions=c[k]["switch_instructions"],
                bit_exact_vs_tflm=bool(np.array_equal(c[k]["out"], want[k])),
            )
            for label, c in counts.items()
        }
        first = next(iter(counts.values()))[k]
        rows.append(
            dict(
                model=name,
                levels=levels,
                level=k,
                widths=list(widths[k]),
                macs=lv["macs_lo"] | (lv["macs_hi"] << 32),
                switch_instructions=first["switch_instructions"],
                instructions=first["instructions"],
                cycles=first["cycles"],
                init_instructions=first["init_instructions"],
                bit_exact_vs_tflm=all(v["bit_exact_vs_tflm"] for v in variants.values()),
                variants=variants,
            )
        )
    m4 = next(iter(m4s.values()))
    sizeof_model = int.from_bytes(m4.read(m4.sym["bench_sizeof_reds_model"], 4), "little")
    hdr = info["header"]
    for r in rows:  # memory the application needs for this model (flash: blob; RAM: model + buffers)
        r.update(blob_bytes=len(blob), scratch_bytes=hdr["max_scratch"], model_struct_bytes=sizeof_model)
        r["static_ram_bytes"] = sizeof_model + hdr["max_scratch"] + hdr["max_in"] + hdr["max_out"]
    full_macs, full_n = rows[-1]["macs"], rows[-1]["instructions"]
    for r in rows:
        r["mac_fraction"] = r["macs"] / full_macs
        r["instr_fraction"] = r["instructions"] / full_n
        r["ratio"] = r["instr_fraction"] / r["mac_fraction"]
    return rows


def _in_shape(tflite: Path) -> tuple[int, ...]:
    from tflite_micro import runtime

    it = runtime.Interpreter.from_bytes(tflite.read_bytes(), arena_size=256 * 1024)
    return tuple(int(d) for d in it.get_input_details(0)["shape"][1:])


# ---------------------------------------------------------------- report
#: MLPerf Tiny v1.x KWS (DS-CNN, 2,656,768 MACs) on Cortex-M4F (STM32L4R5 at 120 MHz): cycles per MAC from
#: the published median throughput (../shared/docs/toolchain-notes.md).
MLPERF_KWS_CYCLES_PER_MAC = {
    "ST X-CUBE-AI": 1.95,
    "Plumerai": 2.16,
    "ONNC + CMSIS-NN": 3.70,
    "microTVM + CMSIS-NN": 4.51,
    "TFLM reference (2020)": 8.22,
}


def _per(v: dict, key: str, macs: int) -> str:
    return f"{v[key] / macs:6.2f}" if macs else "     -"


def print_kernels(rows: list[dict]) -> None:
    labels = [v[0] for v in VARIANTS]
    print("\nPer-kernel instructions / MAC and estimated cycles / MAC (Cortex-M4, unicorn; CortexM4Timing),")
    print("weights read through the full tensor's strides; DSP = SIMD kernels, C = portable kernels")
    print(
        f"{'shape':15s} {'kernel':24s} {'MACs':>8s} "
        + " ".join(f"{lbl + ' i/c':>15s}" for lbl in labels)
        + f" {'CMSIS-NN i -O2/-Os':>19s}"
    )
    for r in rows:
        cells = " ".join(
            (
                _per(r[lbl], "instructions", r["macs"])
                + "/"
                + f"{_per(r[lbl], 'cycles', r['macs']).strip():>5s}"
            ).rjust(15)
            for lbl in labels
        )
        peer = CMSIS_NN.get(r["kernel"]) if r["shape"].startswith("DS-CNN 28") else None
        peer_s = f"{peer[0]:.2f} / {peer[1]:.2f}" if peer else ""
        print(f"{r['shape']:15s} {r['kernel']:24s} {r['macs']:8d} {cells} {peer_s:>19s}")


LEVEL_TITLES = {
    "reds": "REDS levels (knapsack plan, MAC budgets 25/50/75 % + full; magnitude-sorted units)",
    "run": "REDS levels of a trained `reds run` (Taylor-score plan, its converted submodels)",
    "uniform": "uniform width multipliers (all groups at one fraction; NOT REDS levels, for comparison)",
}


def print_models(rows: list[dict]) -> bool:
    """Print one table per kind of levels; the targets are checked on the REDS levels only."""
    labels = [v[0] for v in VARIANTS if any(v[0] in r["variants"] for r in rows)]
    ok = True
    for kind in dict.fromkeys(r["levels"] for r in rows):
        print(f"\nPer-level inference, {LEVEL_TITLES[kind]}")
        print(
            "Cortex-M4, unicorn; per build: instructions/MAC, estimated cycles/MAC, "
            f"estimated ms at {MHZ} MHz;"
        )
        print(
            f"ratio = instruction fraction / MAC fraction of the widest level ({PRIMARY}); "
            "bit-exact = every build"
        )
        print(
            f"{'model':13s} {'lvl':>3s} {'MACs':>8s} {'MAC frac':>8s} {'ratio':>6s} {'switch':>6s} "
            f"{'exact':>5s} " + " ".join(f"{lbl + ' i/c/ms':>20s}" for lbl in labels)
        )
        for r in (r for r in rows if r["levels"] == kind):
            cells = []
            for lbl in labels:
                v = r["variants"][lbl]
                ms = v["cycles"] / (MHZ * 1e3)
                cells.append(
                    f"{v['instructions'] / r['macs']:5.2f} {v['cycles'] / r['macs']:5.2f} {ms:8.2f}".rjust(20)
                )
            print(
                f"{r['model']:13s} {r['level']:3d} {r['macs']:8d} {r['mac_fraction']:8.3f} {r['ratio']:6.3f} "
                f"{r['switch_instructions']:6d} {str(r['bit_exact_vs_tflm']):>5s} " + " ".join(cells)
            )
            ok &= r["switch_instructions"] <= SWITCH_TARGET and r["bit_exact_vs_tflm"]
            if kind in ("reds", "run"):
                ok &= abs(r["ratio"] - 1.0) <= PROPORTIONAL_TOL
    for name in dict.fromkeys(r["model"] for r in rows):
        r = next(r for r in rows if r["model"] == name)
        print(
            f"{name}: blob {r['blob_bytes']} B (flash, all levels), static RAM {r['static_ram_bytes']} B "
            f"(reds_model {r['model_struct_bytes']} + scratch {r['scratch_bytes']} + input/output buffers)"
        )
    full = {r["model"]: r for r in rows if r["levels"] in ("reds", "run") and r["mac_fraction"] == 1.0}
    if "ds_cnn_fmnist" in full:
        r, (o2, os_) = full["ds_cnn_fmnist"], CMSIS_NN["ds_cnn_fmnist full level"]
        print(
            "ds_cnn_fmnist full level, instructions/MAC: ours "
            + ", ".join(
                f"{lbl} {r['variants'][lbl]['instructions'] / r['macs']:.2f}"
                for lbl in labels
                if lbl in r["variants"]
            )
            + f"; CMSIS-NN -O2 {o2:.2f}, -Os {os_:.2f}"
        )
    if "ds_cnn_s" in full:
        r = full["ds_cnn_s"]
        ours = ", ".join(f"{lbl} {r['variants'][lbl]['cycles'] / r['macs']:.2f}" for lbl in labels)
        peers = ", ".join(f"{k} {v:.2f}" for k, v in MLPERF_KWS_CYCLES_PER_MAC.items())
        print(f"KWS DS-CNN-S full level ({r['macs']} MACs), cycles/MAC: ours (estimated) {ours}")
        print(f"  MLPerf Tiny KWS on Cortex-M4F (measured): {peers}")
    print(
        f"targets (REDS levels): switching <= {SWITCH_TARGET} instructions, |ratio - 1| <= "
        f"{PROPORTIONAL_TOL}, bit-exact with tflite-micro: {'MET' if ok else 'NOT MET'}"
    )
    return ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=("kernels", "models", "all"), default="all")
    ap.add_argument("--models", default="ds_cnn_fmnist,ds_cnn_s,fc2", help="comma list of zoo names")
    ap.add_argument(
        "--levels",
        default="reds",
        help="comma list: reds (the solver's plan, the targets) and/or uniform (width multipliers)",
    )
    ap.add_argument(
        "--run-dir",
        type=Path,
        action="append",
        default=[],
        help="also measure the converted levels of a finished `reds run` (repeatable)",
    )
    ap.add_argument("--fractions", default="0.25,0.5,0.75,1.0", help="uniform width fraction per level")
    ap.add_argument("--build-dir", type=Path, default=FIRMWARE / "build")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON here")
    a = ap.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, str(ROOT))
    m4s = build_all(a.build_dir)
    print(size_report(a.build_dir / "m4-Os"))
    result: dict = {}
    if a.only in ("kernels", "all"):
        result["kernels"] = kernel_rows(m4s)
        print_kernels(result["kernels"])
    ok = True
    if a.only in ("models", "all"):
        fractions = tuple(float(f) for f in a.fractions.split(","))
        result["models"] = []
        with tempfile.TemporaryDirectory() as tmp:
            for kind in a.levels.split(","):
                for name in a.models.split(","):
                    if kind == "reds":
                        model, plan = reds_plan(name)
                    elif kind == "uniform":
                        model, plan = uniform_plan(name, fractions)
                    else:
                        raise SystemExit(f"--levels: unknown kind {kind!r}; use reds and/or uniform")
                    work = Path(tmp) / f"{kind}_{name}"
                    work.mkdir()
                    result["models"] += model_rows(m4s, name, kind, model, plan, work)
            for i, run_dir in enumerate(a.run_dir):
                work = Path(tmp) / f"run_{i}"
                work.mkdir()
                result["models"] += run_dir_rows(m4s, run_dir, work)
        ok = print_models(result["models"])
    if a.json:
        a.json.write_text(json.dumps(result, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
