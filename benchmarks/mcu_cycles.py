"""Executed Cortex-M4 instructions of the reds runtime, counted in unicorn.

Builds ``make -C firmware m4`` (arm-none-eabi-gcc -O2, -mcpu=cortex-m4 -mthumb -mfloat-abi=hard),
loads ``bench.elf`` into unicorn (Cortex-M4 CPU model) and counts executed instructions with a
UC_HOOK_BLOCK hook (Thumb-2 instruction lengths decoded from each block, cached per block):

* kernels: each DS-CNN-S layer kernel at several channel widths, reading a full-width weight tensor
  through its strides as a nested level does (instructions and instructions per MAC);
* models: nested DS-CNN-S (zoo ``ds_cnn_s``) and the 2-layer FC (zoo ``fc2``) with REDS levels (the
  knapsack solver's plan for MAC budgets 25/50/75 % plus the full model, on magnitude scores of the
  seeded model after sorting its units) and, for comparison, uniform width multipliers
  (``--levels``), converted per level to int8 .tflite, quantised once from the widest level
  (``reds_tf.convert.quantize.share_weights``) and packed into one device blob with one shared weight
  arena (``reds_tf.convert.c_arena``); for every level, ``reds_set_level`` (switching) and
  ``reds_invoke`` (one inference) next to the level's MAC fraction.
  Every emulated inference is checked bit-exact against the tflite-micro interpreter on the same input.

Targets (issue 7): switching <= 64 instructions; inference instructions within +-15 % of proportional
to MACs across levels (ratio = instruction fraction / MAC fraction of the widest level).

    python benchmarks/mcu_cycles.py                 # kernels + both models
    python benchmarks/mcu_cycles.py --only kernels  # no TensorFlow needed
"""

from __future__ import annotations

import argparse
import json
import os
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


# ---------------------------------------------------------------- emulator
class M4:
    """A Cortex-M4 in unicorn with the bench image loaded; `call` returns (r0, instructions)."""

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
        self._heap = RAM
        self._lengths: dict[tuple[int, int], int] = {}
        self.count = 0
        self.uc.hook_add(UC_HOOK_BLOCK, self._on_block)

    def _on_block(self, uc: Uc, address: int, size: int, _user: object) -> None:
        n = self._lengths.get((address, size))
        if n is None:  # Thumb-2: a halfword starting 0b11101/0b11110/0b11111 opens a 32-bit instruction
            code, n, i = uc.mem_read(address, size), 0, 0
            while i < size:
                hw = code[i] | (code[i + 1] << 8)
                i += 4 if (hw >> 11) in (0b11101, 0b11110, 0b11111) else 2
                n += 1
            self._lengths[(address, size)] = n
        self.count += n

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
        self.count = 0
        self.uc.emu_start(self.sym[name] | 1, STOP)
        if self.uc.reg_read(UC_ARM_REG_PC) != STOP:
            raise RuntimeError(f"{name} did not return to the stop address")
        r0 = self.uc.reg_read(UC_ARM_REG_R0)
        return (r0 - (1 << 32) if r0 & 0x80000000 else r0), self.count


def build(build_dir: Path) -> Path:
    subprocess.run(["make", "-s", "-C", str(FIRMWARE), "m4", f"BUILD={build_dir}"], check=True)
    return build_dir / "m4" / "bench.elf"


def size_report(build_dir: Path) -> str:
    objs = sorted(str(p) for p in (build_dir / "m4").glob("*.o"))
    return subprocess.run(
        ["arm-none-eabi-size", "-t", *objs], capture_output=True, text=True, check=True
    ).stdout


# ---------------------------------------------------------------- kernels at several widths
def _same(in_size: int, k: int, s: int) -> tuple[int, int]:
    out = (in_size + s - 1) // s
    return out, max(((out - 1) * s + k - in_size) // 2, 0)


def kernel_rows(m4: M4, full: int = 64, fractions=(0.25, 0.5, 0.75, 1.0)) -> list[dict]:
    """DS-CNN-S layer kernels (49x10 input, 10x4 s2 conv, DW 3x3, PW, mean, FC 12) per width."""
    rng = np.random.default_rng(0)
    rows = []
    oh, ph = _same(49, 10, 2)
    ow, pw = _same(10, 4, 2)
    for f in fractions:
        c = max(1, round(full * f))
        m4.reset_heap()
        out = m4.alloc(oh * ow * full * 4)

        def rnd(n: int) -> int:
            return m4.alloc(rng.integers(-128, 128, n, dtype=np.int8).tobytes())

        x = rnd(49 * 10)
        act = rnd(oh * ow * full)
        shape = lambda *v: m4.alloc(np.array(v, np.int32).tobytes())  # noqa: E731
        conv1 = shape(49, 10, 1, c, 10, 4, 2, ph, pw, oh, ow, 1)
        dw = shape(oh, ow, c, c, 3, 3, 1, 1, 1, oh, ow, full)
        pw1 = shape(oh, ow, c, c, 1, 1, 1, 0, 0, oh, ow, full)
        cases = [
            ("conv 10x4 s2 (1->C)", "bench_conv", (rnd(full * 40), x, out, conv1), oh * ow * 40 * c),
            ("depthwise 3x3", "bench_dw", (rnd(9 * full), act, out, dw), oh * ow * 9 * c),
            ("pointwise 1x1 (C->C)", "bench_conv", (rnd(full * full), act, out, pw1), oh * ow * c * c),
            ("mean HxW", "bench_mean", (act, out, oh, ow, c), 0),
            ("fully connected C->12", "bench_fc", (rnd(12 * full), act, out, c, 12, full), 12 * c),
        ]
        for name, fn, args, macs in cases:
            status, n = m4.call(fn, *args)
            if status != 0:
                raise RuntimeError(f"{fn} returned status {status} at width {c}")
            rows.append(dict(kernel=name, width=c, macs=macs, instructions=n))
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


def model_rows(m4: M4, name: str, levels: str, model, plan, work: Path) -> list[dict]:
    """Switch + inference instructions per level of `plan` on `model`; `levels` labels the table."""
    return level_rows(m4, name, levels, _level_tflites(model, plan, work), plan.widths, work)


def run_dir_rows(m4: M4, run_dir: Path, work: Path) -> list[dict]:
    """The per-level .tflite files a `reds run` converted (trained model, solver plan from Taylor scores)."""
    from reds_tf.plan import WidthPlan

    paths = sorted((run_dir / "converted").glob("submodel_*.tflite"), key=lambda p: int(p.stem.split("_")[1]))
    if not paths:
        raise SystemExit(f"--run-dir {run_dir}: no converted/submodel_*.tflite. Fix: finish `reds run`.")
    plan = WidthPlan.load(run_dir / "plan.json")
    return level_rows(m4, run_dir.name, "run", paths, plan.widths, work)


def level_rows(m4: M4, name: str, levels: str, paths: list[Path], widths, work: Path) -> list[dict]:
    """Pack the per-level .tflite files into one blob; count switching and inference per level."""
    from reds_tf.convert import c_arena

    c_arena.write(paths, work, "model")
    blob = (work / "model.blob").read_bytes()
    info = c_arena.read_blob(blob)
    m4.reset_heap()
    m4.uc.mem_write(BLOB_ADDR, blob)
    model = m4.alloc(4096)  # sizeof(reds_model) is well below this
    status, init_n = m4.call("reds_model_init", model, BLOB_ADDR, len(blob))
    if status != 0:
        raise RuntimeError(f"reds_model_init returned {status} for {name}")
    hdr = info["header"]
    scratch_len = max(hdr["max_scratch"], 4)
    scratch = m4.alloc(scratch_len)
    inp, out = m4.alloc(hdr["max_in"]), m4.alloc(hdr["max_out"])
    rng = np.random.default_rng(1)
    rows = []
    for k, lv in enumerate(info["levels"]):
        status, switch_n = m4.call("reds_set_level", model, k)
        if status != 0:
            raise RuntimeError(f"reds_set_level({k}) returned {status}")
        x = rng.integers(-128, 128, lv["in_bytes"], dtype=np.int8)
        m4.uc.mem_write(inp, x.tobytes())
        status, infer_n = m4.call("reds_invoke", model, inp, out, scratch, scratch_len)
        if status != 0:
            raise RuntimeError(f"reds_invoke at level {k} returned {status}")
        got = np.frombuffer(m4.read(out, lv["out_bytes"]), np.int8)
        want = _tflm_output(paths[k], x.reshape(1, *[d for d in _in_shape(paths[k])]))
        macs = lv["macs_lo"] | (lv["macs_hi"] << 32)
        rows.append(
            dict(model=name, levels=levels, level=k, widths=list(widths[k]), macs=macs,
                 switch_instructions=switch_n, instructions=infer_n, init_instructions=init_n,
                 bit_exact_vs_tflm=bool(np.array_equal(got, want)))
        )  # fmt: skip
    sizeof_model = int.from_bytes(m4.read(m4.sym["bench_sizeof_reds_model"], 4), "little")
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
def print_kernels(rows: list[dict]) -> None:
    print("\nPer-kernel instructions (Cortex-M4, -O2, unicorn), weights read with full-width strides")
    print(f"{'kernel':24s} {'width':>5s} {'MACs':>9s} {'instructions':>13s} {'instr/MAC':>9s}")
    for r in rows:
        per = f"{r['instructions'] / r['macs']:.2f}" if r["macs"] else "-"
        print(f"{r['kernel']:24s} {r['width']:5d} {r['macs']:9d} {r['instructions']:13d} {per:>9s}")


LEVEL_TITLES = {
    "reds": "REDS levels (knapsack plan, MAC budgets 25/50/75 % + full; magnitude-sorted units)",
    "run": "REDS levels of a trained `reds run` (Taylor-score plan, its converted submodels)",
    "uniform": "uniform width multipliers (all groups at one fraction; NOT REDS levels, for comparison)",
}


def print_models(rows: list[dict]) -> bool:
    """Print one table per kind of levels; the targets are checked on the REDS levels only."""
    ok = True
    for kind in dict.fromkeys(r["levels"] for r in rows):
        print(f"\nPer-level instructions, {LEVEL_TITLES[kind]}")
        print("Cortex-M4, -O2, unicorn; ratio = instruction fraction / MAC fraction (of the widest level)")
        print(f"{'model':9s} {'lvl':>3s} {'MACs':>9s} {'MAC frac':>8s} {'instructions':>13s} "
              f"{'instr frac':>10s} {'ratio':>6s} {'switch':>6s} {'bit-exact':>9s}  widths")  # fmt: skip
        for r in (r for r in rows if r["levels"] == kind):
            print(f"{r['model']:9s} {r['level']:3d} {r['macs']:9d} {r['mac_fraction']:8.3f} "
                  f"{r['instructions']:13d} {r['instr_fraction']:10.3f} {r['ratio']:6.3f} "
                  f"{r['switch_instructions']:6d} {str(r['bit_exact_vs_tflm']):>9s}  "
                  f"{','.join(map(str, r['widths']))}")  # fmt: skip
            ok &= r["switch_instructions"] <= SWITCH_TARGET and r["bit_exact_vs_tflm"]
            if kind in ("reds", "run"):
                ok &= abs(r["ratio"] - 1.0) <= PROPORTIONAL_TOL
    for name in dict.fromkeys(r["model"] for r in rows):
        r = next(r for r in rows if r["model"] == name)
        print(
            f"{name}: blob {r['blob_bytes']} B (flash, all levels), static RAM {r['static_ram_bytes']} B "
            f"(reds_model {r['model_struct_bytes']} + scratch {r['scratch_bytes']} + input/output buffers)"
        )
    print(f"targets (REDS levels): switching <= {SWITCH_TARGET} instructions, |ratio - 1| <= "
          f"{PROPORTIONAL_TOL}, bit-exact with tflite-micro: {'MET' if ok else 'NOT MET'}")  # fmt: skip
    return ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=("kernels", "models", "all"), default="all")
    ap.add_argument("--models", default="ds_cnn_s,fc2", help="comma list of zoo names")
    ap.add_argument(
        "--levels",
        default="reds,uniform",
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
    elf = build(a.build_dir)
    print(size_report(a.build_dir))
    m4 = M4(elf)
    result: dict = {}
    if a.only in ("kernels", "all"):
        result["kernels"] = kernel_rows(m4)
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
                    result["models"] += model_rows(m4, name, kind, model, plan, work)
            for i, run_dir in enumerate(a.run_dir):
                work = Path(tmp) / f"run_{i}"
                work.mkdir()
                result["models"] += run_dir_rows(m4, run_dir, work)
        ok = print_models(result["models"])
    if a.json:
        a.json.write_text(json.dumps(result, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
