"""Running a built PuLP model: CBC as a child process under a hard deadline, HiGHS in process.

CBC is run directly (not through ``pulp.COIN_CMD``) so that its files live in the solve's
private scratch directory, its limits are elapsed time plus a node budget, and a CBC that
overruns its own soft time limit is stopped: SIGINT first (CBC then stops its search and
still writes its best solution), SIGKILL if it does not exit soon after.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pulp

# Seconds CBC may take after SIGINT to write its solution before it is killed.
_SIGINT_GRACE_S = 1.0


class Terminated(BaseException):
    """SIGTERM arrived during a solve: unwind (removing temp files), then die of SIGTERM."""


@contextmanager
def scratch_dir() -> Iterator[Path]:
    """A private temp directory, removed on return, on any exception, on Ctrl-C and on SIGTERM.

    A SIGTERM handler (main thread only: Python allows no other) turns the signal into an
    exception so ``finally`` blocks run; afterwards the process re-raises SIGTERM on
    itself with the previous handler, so it still ends the way the sender expects.
    """
    path = Path(tempfile.mkdtemp(prefix="reds_solve_"))
    main = threading.current_thread() is threading.main_thread()
    old = None
    if main:

        def _raise(signum: int, frame: object) -> None:
            raise Terminated()

        old = signal.signal(signal.SIGTERM, _raise)
    terminated = False
    try:
        yield path
    except Terminated:
        terminated = True
    finally:
        shutil.rmtree(path, ignore_errors=True)
        if main:
            signal.signal(signal.SIGTERM, old)
    if terminated:
        os.kill(os.getpid(), signal.SIGTERM)
        raise Terminated()  # a handler that does not exit: still leave the solve


@dataclass
class RunResult:
    """``status``: optimal | time_limit | node_limit | infeasible | no solution."""

    status: str
    gap_abs: float | None  # |bound - incumbent| in the solver's objective units


@dataclass(frozen=True)
class Limits:
    """How a solve may run: scratch directory, solver, relative gap, nodes per MILP, solver log."""

    workdir: Path
    solver: str = "cbc"
    gap: float = 0.01
    node_limit: int = 10_000
    msg: bool = False


def run(lp: pulp.LpProblem, limits: Limits, deadline: float, warm: bool) -> RunResult:
    """Solve ``lp`` (values land on its variables) and stop by ``deadline`` (time.monotonic())."""
    if limits.solver == "highs":
        return _run_highs(lp, limits, deadline)
    return _run_cbc(lp, limits, deadline, warm)


def _status(lp: pulp.LpProblem, stop: str) -> str:
    if lp.sol_status == pulp.LpSolutionOptimal and stop == "":
        return "optimal"
    if lp.sol_status in (pulp.LpSolutionOptimal, pulp.LpSolutionIntegerFeasible):
        return stop or "time_limit"
    if lp.sol_status == pulp.LpSolutionInfeasible or lp.status == pulp.LpStatusInfeasible:
        return "infeasible"
    return "no solution"


def _run_highs(lp: pulp.LpProblem, limits: Limits, deadline: float) -> RunResult:
    left = max(0.01, deadline - time.monotonic())
    sol = pulp.HiGHS(msg=limits.msg, timeLimit=left, gapRel=limits.gap, mip_max_nodes=limits.node_limit)
    lp.solve(sol)
    info = lp.solverModel.getInfo()
    said = lp.solverModel.modelStatusToString(lp.solverModel.getModelStatus()).lower()
    # "Time limit reached"; the node budget ends as "Solution limit reached".
    stop = "time_limit" if "time limit" in said else "node_limit" if "limit" in said else ""
    status = _status(lp, stop)
    bound, obj = float(info.mip_dual_bound), float(info.objective_function_value)
    if not (np.isfinite(bound) and np.isfinite(obj)):
        return RunResult(status, None)
    return RunResult(status, abs(bound - obj))


def _tail(path: Path, stop: threading.Event) -> None:
    """Echo a growing log file to stderr until ``stop`` is set (CBC progress with msg=True)."""
    pos = 0
    while True:
        done = stop.is_set()
        try:
            with open(path) as f:
                f.seek(pos)
                chunk = f.read()
                pos = f.tell()
        except FileNotFoundError:
            chunk = ""
        if chunk:
            sys.stderr.write(chunk)
            sys.stderr.flush()
        if done:
            return
        stop.wait(0.5)


def _run_cbc(lp: pulp.LpProblem, limits: Limits, deadline: float, warm: bool) -> RunResult:
    cbc = pulp.COIN_CMD(path=pulp.PULP_CBC_CMD.pulp_cbc_path, msg=False)
    mps, sol, mst, log = (limits.workdir / f"model.{e}" for e in ("mps", "sol", "mst", "log"))
    for f in (sol, mst, log):
        f.unlink(missing_ok=True)
    vs, var_names, con_names, _ = lp.writeMPS(str(mps), rename=1)
    args = [cbc.path, str(mps), "-max"]
    if warm:
        cbc.writesol(str(mst), lp, vs, var_names, con_names)
        args += ["-mips", str(mst)]
    left = deadline - time.monotonic()
    # CBC's own limit is soft: ask it to stop early enough to write its answer by the deadline.
    # preprocess off: CBC 2.10's preprocessing once returned a wrong "Optimal" (knapsack-notes);
    # feas off: the feasibility pump wasted about a minute on large flow models.
    args += ["-sec", f"{max(0.01, 0.9 * left - 0.5):.2f}", "-timeMode", "elapsed"]
    args += ["-ratio", repr(float(limits.gap)), "-maxNodes", str(int(limits.node_limit))]
    args += ["-preprocess", "off", "-feas", "off", "-solve", "-printingOptions", "all"]
    args += ["-solution", str(sol)]
    stop_tail = threading.Event()
    tail = threading.Thread(target=_tail, args=(log, stop_tail), daemon=True) if limits.msg else None
    interrupted = False
    with open(log, "w") as out:
        # Own session: a terminal's Ctrl-C reaches Python, which then stops CBC here.
        proc = subprocess.Popen(
            args, stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True
        )
        if tail:
            tail.start()
        try:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                interrupted = True
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=_SIGINT_GRACE_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            stop_tail.set()
            if tail:
                tail.join()
    text = log.read_text()
    if not sol.exists() or sol.stat().st_size == 0:
        return RunResult("no solution", None)
    status, values, _, _, _, sol_status = cbc.readsol_MPS(str(sol), lp, vs, var_names, con_names)
    lp.assignVarsVals(values)
    lp.assignStatus(status, sol_status)
    stop = ""
    if interrupted or re.search(r"Result - Stopped on time", text):
        stop = "time_limit"
    elif re.search(r"Result - Stopped on (nodes|iterations|solutions)", text):
        stop = "node_limit"
    result = _status(lp, stop)
    mo = re.search(r"Objective value:\s+(\S+)", text)
    mb = re.search(r"(?:Lower|Upper) bound:\s+(\S+)", text)
    if mo and mb:
        # CBC minimises -objective for a maximisation; the distance is what matters.
        return RunResult(result, abs(float(mb.group(1)) - float(mo.group(1))))
    return RunResult(result, 0.0 if result == "optimal" else None)
