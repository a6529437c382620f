"""A local multi-worker launcher: N processes of one command on free localhost ports, each with its
``TF_CONFIG``, for tests and for trying ``--strategy multiworker`` on one machine.

    python -m reds_tf.launch --workers 2 -- reds run --recipe models/tiny-fashion_mnist.yaml \\
        --run-dir runs/tiny-2w --strategy multiworker

The chief's (worker 0's) output is shown as it comes; the other workers' output goes to log files whose
last lines are shown, prefixed ``[worker i]``, if that worker fails. When any worker exits non-zero the
others are stopped and the launcher exits with that status (so a killed worker ends the whole cluster,
which is then started again with ``--resume``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

POLL_S = 0.2
STOP_GRACE_S = 5.0
TAIL_LINES = 20


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """``n`` distinct ports free on ``host`` now (all held open together, so none repeats)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(n)]
        for s in socks:
            s.bind((host, 0))
        return [s.getsockname()[1] for s in socks]


def tf_configs(ports: Sequence[int], host: str = "127.0.0.1") -> list[str]:
    """One ``TF_CONFIG`` per worker of a cluster on ``host``: the same worker list, its own index."""
    workers = [f"{host}:{p}" for p in ports]
    return [
        json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}})
        for i in range(len(workers))
    ]


def _pump(src, dst) -> None:
    for line in iter(src.readline, ""):
        dst.write(line)
        dst.flush()


def _stop(procs: Sequence[subprocess.Popen]) -> None:
    """SIGTERM every live worker's process group, then SIGKILL what is left after a grace period."""
    live = [p for p in procs if p.poll() is None]
    for p in live:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    for p in live:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def _tail(path: Path, n: int = TAIL_LINES) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()[-n:]
    except OSError:
        return []


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def launch(command: Sequence[str], workers: int, host: str = "127.0.0.1") -> int:
    """Run ``command`` as ``workers`` local workers; return 0 when all succeed, else the first failing
    worker's exit status (1 if it was killed by a signal)."""
    if not command:
        sys.stderr.write("Error: no command to launch. Fix: reds launch --workers 2 -- reds run ...\n")
        return 2
    if workers < 1:
        sys.stderr.write(f"Error: --workers must be >= 1. Received: {workers}.\n")
        return 2
    if threading.current_thread() is threading.main_thread():
        # `kill LAUNCHER` must not orphan the workers (they run in their own sessions): unwind through
        # the finally below, which stops them.
        signal.signal(signal.SIGTERM, _exit_on_signal)
    configs = tf_configs(free_ports(workers, host), host)
    logs = Path(tempfile.mkdtemp(prefix="reds-launch-"))
    procs: list[subprocess.Popen] = []
    files = []
    try:
        for i, cfg in enumerate(configs):
            env = {**os.environ, "TF_CONFIG": cfg}
            if i == 0:
                out = subprocess.PIPE
            else:
                out = open(logs / f"worker{i}.log", "w")  # noqa: SIM115 - closed in finally
                files.append(out)
            # Own process group: stopping a worker also stops whatever it started.
            procs.append(subprocess.Popen(list(command), env=env, stdout=out, stderr=subprocess.STDOUT,
                                          text=True, start_new_session=True))  # fmt: skip
        pump = threading.Thread(target=_pump, args=(procs[0].stdout, sys.stdout), daemon=True)
        pump.start()
        while True:
            codes = [p.poll() for p in procs]
            failed = [(i, c) for i, c in enumerate(codes) if c not in (None, 0)]
            if failed:
                i, code = failed[0]
                _stop(procs)
                pump.join(timeout=5)
                for line in _tail(logs / f"worker{i}.log") if i else []:
                    sys.stderr.write(f"[worker {i}] {line}\n")
                how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
                sys.stderr.write(
                    f"Error: worker {i} {how}; stopped the other workers. Fix: see its output above, "
                    "then start the cluster again (add --resume to continue from the last checkpoint).\n"
                )
                return code if code > 0 else 1
            if all(c == 0 for c in codes):
                pump.join(timeout=5)
                return 0
            time.sleep(POLL_S)
    except KeyboardInterrupt:
        _stop(procs)
        sys.stderr.write("Error: interrupted; stopped every worker.\n")
        return 130
    finally:
        _stop(procs)
        for f in files:
            f.close()

        shutil.rmtree(logs, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m reds_tf.launch", description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2, help="number of local workers (default 2)")
    ap.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command, e.g. reds run ...")
    args = ap.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    return launch(command, args.workers)


if __name__ == "__main__":
    sys.exit(main())
