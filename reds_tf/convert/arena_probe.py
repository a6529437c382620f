"""Child process for ``verify.measure_arenas``: the smallest TFLM arena of each model, found by probing.

tflite-micro's Python interpreter can segfault (not raise) when it is built with an arena smaller than
the model needs, so the probing runs here, in a process of its own, and never in the caller's. The
script imports only numpy and tflite_micro (it is run by path, so the package's TensorFlow import is
not paid). Protocol on stdout, one line per event, flushed before the risky call:

    try I N      about to build model I with an N-byte arena
    fit I N 0|1  the result of that try
    min I N      model I's smallest arena

A parent that sees the child die after ``try I N`` restarts it with ``--unsafe I:N``: sizes <= N of
model I then count as "does not fit" and are never tried again.

Usage: python arena_probe.py MODEL.tflite... [--unsafe I:N ...]   (I: the model's position)
"""

from __future__ import annotations

import os
import re
import sys
import tempfile

import numpy as np
from tflite_micro import runtime

# Growing past this means the model cannot run at all; the parent turns it into an error.
ARENA_MAX = 64 * 1024 * 1024
_TOTAL = re.compile(rb"Arena allocation total (\d+) bytes")


def _say(*words: object) -> None:
    sys.stdout.write(" ".join(str(w) for w in words) + "\n")
    sys.stdout.flush()


def _input_probe(it: runtime.Interpreter) -> np.ndarray:
    d = it.get_input_details(0)
    return np.zeros(d["shape"], d["dtype"])


def recorded_total(model: bytes) -> int:
    """Arena bytes TFLM's RecordingMicroAllocator reports after one invoke in a generous arena."""
    it = runtime.Interpreter.from_bytes(model, arena_size=max(len(model) * 10, 256 * 1024))
    it.set_input(_input_probe(it), 0)
    it.invoke()
    with tempfile.TemporaryFile() as f:
        saved = os.dup(2)
        os.dup2(f.fileno(), 2)
        try:
            it.print_allocations()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        f.seek(0)
        found = _TOTAL.search(f.read())
    if not found:
        raise RuntimeError("tflite-micro printed no arena total")
    return int(found.group(1))


def smallest_arena(i: int, model: bytes, unsafe: int) -> int:
    """Smallest arena that builds and runs ``model``; sizes <= ``unsafe`` are taken as too small."""

    def fits(n: int) -> bool:
        if n <= unsafe:
            return False
        _say("try", i, n)
        try:
            it = runtime.Interpreter.from_bytes(model, arena_size=n)
            it.set_input(_input_probe(it), 0)
            it.invoke()
            ok = True
        except (RuntimeError, ValueError):
            ok = False
        _say("fit", i, n, int(ok))
        return ok

    hi = max(recorded_total(model), unsafe + 1)
    while not fits(hi):
        hi += max(16, hi // 8)
        if hi > ARENA_MAX:
            return -1
    # The recorded total is usually the minimum or a few alignment bytes above it: step down in
    # doubling strides while it still fits, then bisect the last gap (fits is monotone in n).
    step, lo = 16, hi - 16
    while lo > 0 and fits(lo):
        hi, step = lo, step * 2
        lo = hi - step
    lo = max(lo, 0)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(mid):
            hi = mid
        else:
            lo = mid
    return hi


def _pairs(args: list[str], flag: str) -> dict[int, int]:
    out = {}
    for j, a in enumerate(args):
        if a == flag:
            i, n = args[j + 1].split(":")
            out[int(i)] = int(n)
    return out


def main(argv: list[str]) -> int:
    paths = []
    j = 0
    while j < len(argv):
        if argv[j].startswith("--"):
            j += 2
            continue
        paths.append(argv[j])
        j += 1
    unsafe = _pairs(argv, "--unsafe")
    for i, p in enumerate(paths):
        with open(p, "rb") as f:
            model = f.read()
        _say("min", i, smallest_arena(i, model, unsafe.get(i, 0)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
