"""Several workers: the cluster from ``TF_CONFIG``, ``MultiWorkerMirroredStrategy`` with timeouts, and
where each worker writes.

Design (why every worker runs the whole pipeline): training steps run under the strategy, so every
worker must take part in them anyway; and outside ``strategy.run`` a read of a BatchNorm moving statistic
(a sync-on-read variable) is itself a collective all-reduce, as is saving such a variable. So evaluation,
checkpoints and ``model.save`` are collectives too, and a design where only the chief runs them would hang.
The steps in between (importance scores, permutation, the knapsack solve, evaluation) are deterministic
functions of the synchronised weights and of the same (unsharded) data on every worker, so each worker
computes the same plan itself: no broadcast is needed, and ``check_same_plan`` verifies it with one
all-reduce before fine-tuning builds the nested model. Only the chief (worker 0) writes the run directory;
the others write to a temporary directory that is removed at the end (TF's multi-worker checkpoint
pattern: every worker calls save, only the chief's copy is kept).

Nothing here imports TensorFlow at module level: the CLI checks ``TF_CONFIG`` before TF starts.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import RedsError

TF_CONFIG = "TF_CONFIG"
TIMEOUT_ENV = "REDS_CLUSTER_TIMEOUT"
# Seconds to wait for every worker at start-up. Short enough that a cluster with a missing worker ends
# within a minute (TensorFlow's own default is to wait forever); raise it for hand-started machines.
DEFAULT_TIMEOUT = 30.0
# A collective during training may wait this long for a slower peer (tracing a joint step on a busy
# machine takes tens of seconds) before it fails with DeadlineExceeded instead of hanging.
COLLECTIVE_TIMEOUT = 180.0
EXAMPLE = (
    'TF_CONFIG=\'{"cluster": {"worker": ["host0:12345", "host1:12345"]}, '
    '"task": {"type": "worker", "index": 0}}\''
)
_ADDRESS = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.\-_]+):(\d{1,5})$")


class ClusterConfigError(RedsError, ValueError):
    """``TF_CONFIG`` is missing or malformed, or this worker cannot take its place in the cluster."""


class ClusterError(RedsError, RuntimeError):
    """A worker failed, or could not be reached, while the cluster ran."""


@dataclass(frozen=True)
class Cluster:
    """The workers' addresses (worker 0 is the chief) and this process's index among them."""

    workers: tuple[str, ...]
    index: int

    @property
    def is_chief(self) -> bool:
        return self.index == 0

    @property
    def num_workers(self) -> int:
        return len(self.workers)

    @property
    def port(self) -> int:
        return int(self.workers[self.index].rsplit(":", 1)[1])


def _fail(problem: str) -> ClusterConfigError:
    return ClusterConfigError(
        f"{problem} Fix: set TF_CONFIG on every worker, e.g. {EXAMPLE} (index: this worker's position "
        "in the list; worker 0 is the chief), or start local workers with "
        "`reds launch --workers 2 -- reds run ...`."
    )


def read_tf_config(env: Mapping[str, str] | None = None) -> Cluster:
    """The cluster described by ``TF_CONFIG`` (``{"cluster": {"worker": [...]}, "task": {...}}``), checked:
    valid JSON, a non-empty list of distinct ``host:port`` workers, a task of type ``worker`` whose index
    is in range. Raises ``ClusterConfigError`` naming the problem and the fix."""
    raw = (os.environ if env is None else env).get(TF_CONFIG)
    if not raw or not raw.strip():
        raise _fail("TF_CONFIG is not set; --strategy multiworker reads the cluster from it.")
    try:
        cfg = json.loads(raw)
    except json.JSONDecodeError as e:
        raise _fail(
            f"TF_CONFIG is not valid JSON ({e.msg} at character {e.pos}). Received: {raw[:200]!r}."
        ) from None
    if not isinstance(cfg, dict):
        raise _fail(f"TF_CONFIG must be a JSON object. Received: {raw[:200]!r}.")
    cluster, task = cfg.get("cluster"), cfg.get("task")
    if not isinstance(cluster, dict) or not cluster:
        raise _fail("TF_CONFIG has no 'cluster' object.")
    extra = sorted(set(cluster) - {"worker"})
    if extra:
        raise _fail(
            f"TF_CONFIG cluster has jobs {extra}; reds supports only 'worker' (worker 0 is the chief)."
        )
    workers = cluster.get("worker")
    if not isinstance(workers, list) or not workers:
        raise _fail(
            f"TF_CONFIG cluster.worker must be a non-empty list of 'host:port'. Received: {workers!r}."
        )
    for w in workers:
        m = _ADDRESS.match(w) if isinstance(w, str) else None
        if m is None or not 1 <= int(m.group(2)) <= 65535:
            raise _fail(f"TF_CONFIG worker address {w!r} is not host:port (port 1-65535).")
    if len(set(workers)) != len(workers):
        raise _fail(f"TF_CONFIG lists a worker address twice: {workers}.")
    if not isinstance(task, dict):
        raise _fail("TF_CONFIG has no 'task' object (this worker's type and index).")
    if task.get("type") != "worker":
        raise _fail(f"TF_CONFIG task type must be 'worker'. Received: {task.get('type')!r}.")
    index = task.get("index")
    if not isinstance(index, int) or isinstance(index, bool):
        raise _fail(f"TF_CONFIG task index must be an integer. Received: {index!r}.")
    if not 0 <= index < len(workers):
        raise _fail(
            f"TF_CONFIG task index {index} is out of range: the cluster lists {len(workers)} workers "
            f"(indices 0..{len(workers) - 1})."
        )
    return Cluster(tuple(workers), index)


def check_port_free(cluster: Cluster) -> None:
    """Fail at once, with the port's number, when this worker's own port is taken (TensorFlow would
    otherwise abort deep inside its server start-up)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a port in TIME_WAIT is still usable
        try:
            s.bind(("", cluster.port))
        except OSError as e:
            raise ClusterConfigError(
                f"Port {cluster.port} of worker {cluster.index} ({cluster.workers[cluster.index]}) is in "
                f"use ({e.strerror}). Fix: give this worker a free port in TF_CONFIG, or stop the process "
                "that holds it."
            ) from e


def timeout_seconds(env: Mapping[str, str] | None = None) -> float:
    """The start-up timeout: $REDS_CLUSTER_TIMEOUT seconds, else ``DEFAULT_TIMEOUT``."""
    raw = (os.environ if env is None else env).get(TIMEOUT_ENV, "")
    try:
        value = float(raw) if raw.strip() else DEFAULT_TIMEOUT
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ClusterConfigError(
            f"{TIMEOUT_ENV} must be a number of seconds > 0. Received: {raw!r}. Fix: e.g. {TIMEOUT_ENV}=120."
        )
    return value


# The watchdog is a separate process: while TensorFlow connects to its peers the main thread is inside C++
# holding the GIL, so no Python thread or signal handler of this process would run.
_WATCHDOG = """
import os, select, signal, sys
pid, seconds, message = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
ready, _, _ = select.select([sys.stdin], [], [], seconds)
if not ready:  # no word from the worker in time (a word, or EOF when it ends, means: stop watching)
    sys.stderr.write(message + "\\n")
    sys.stderr.flush()
    os.kill(pid, signal.SIGKILL)  # TensorFlow's start-up does not yield to SIGTERM
"""


def _watchdog(cluster: Cluster, seconds: float) -> subprocess.Popen:
    """A process that ends this worker with an ``Error:`` line unless its stdin closes within ``seconds``."""
    others = [w for i, w in enumerate(cluster.workers) if i != cluster.index]
    message = (
        f"Error: worker {cluster.index} waited {seconds:.0f} s for the other workers ({', '.join(others)}) "
        f"and not all of them came up. Fix: start every worker with the same TF_CONFIG cluster and its own "
        f"task index (check addresses, ports and firewalls), or raise {TIMEOUT_ENV}."
    )
    return subprocess.Popen(
        [sys.executable, "-c", _WATCHDOG, str(os.getpid()), str(seconds), message], stdin=subprocess.PIPE
    )


def make_strategy(cluster: Cluster, timeout: float | None = None) -> Any:
    """``MultiWorkerMirroredStrategy`` for ``cluster`` once every worker is up (a first all-reduce as the
    barrier). If that takes longer than ``timeout`` seconds a watchdog prints an ``Error:`` line and
    terminates this process; later collectives fail after ``COLLECTIVE_TIMEOUT`` seconds instead of hanging.
    Must run before anything else touches TensorFlow's runtime (the strategy configures it)."""
    timeout = timeout_seconds() if timeout is None else timeout
    check_port_free(cluster)
    watchdog = _watchdog(cluster, timeout)
    try:
        from ._keras import tf

        options = tf.distribute.experimental.CommunicationOptions(
            timeout_seconds=max(COLLECTIVE_TIMEOUT, timeout)
        )
        strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
        one = strategy.run(lambda: tf.constant(1.0))
        up = float(strategy.reduce(tf.distribute.ReduceOp.SUM, one, axis=None))
    except tf.errors.OpError as e:
        raise ClusterError(
            f"worker {cluster.index} could not reach the other workers ({', '.join(cluster.workers)}) at "
            f"start-up: {type(e).__name__}: {str(e).splitlines()[0][-300:]}. Fix: start every worker with "
            "the same TF_CONFIG cluster and its own task index (check addresses, ports and firewalls)."
        ) from e
    finally:
        watchdog.stdin.close()  # EOF: the watchdog ends without acting
        watchdog.wait()
    if round(up) != strategy.num_replicas_in_sync:
        raise ClusterError(
            f"The start-up all-reduce counted {up} replicas, expected {strategy.num_replicas_in_sync}."
        )
    return strategy


def check_same_plan(strategy: Any, widths: Sequence[int]) -> None:
    """Verify with all-reduces that every worker solved the same plan (their nested models, and so the
    collectives of fine-tuning, must match)."""
    from ._keras import tf

    # CollectiveAllReduce has SUM but not MAX: sum(w)^2 == n * sum(w^2) holds only if all w are equal.
    w = tf.constant([float(v) for v in widths], dtype=tf.float64)
    n = float(strategy.num_replicas_in_sync)
    s1 = strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(lambda: tf.identity(w)), axis=None)
    s2 = strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(lambda: w * w), axis=None)
    if not bool(tf.reduce_all(tf.abs(s1 * s1 - n * s2) < 0.5)):
        raise ClusterError(
            "The workers solved different width plans (the knapsack solver hit its time limit at different "
            "points?). Fix: raise solve.time_limit or loosen solve.gap so the solve finishes, then rerun."
        )


def topology(strategy: Any, cluster: Cluster | None, batch_size: int) -> dict[str, Any]:
    """What results.json records about the distribution: workers, replicas, devices, batch and LR rule."""
    replicas = int(getattr(strategy, "num_replicas_in_sync", 1)) if strategy is not None else 1
    devices = list(getattr(strategy.extended, "worker_devices", ())) if strategy is not None else []
    return {
        "strategy": type(strategy).__name__ if strategy is not None else None,
        "workers": cluster.num_workers if cluster is not None else 1,
        "replicas": replicas,
        "device_kinds": sorted({d.rsplit("/", 1)[-1].split(":")[1] for d in devices if "device:" in d}),
        "global_batch": batch_size,
        "per_replica_batch": batch_size / replicas,
        "lr_rule": "the recipe's batch_size is the global batch, split across replicas; the learning "
        "rate is the recipe's, unchanged, because the global batch does not change with the replicas",
    }


@contextlib.contextmanager
def worker_run_dir(cluster: Cluster | None, run_dir: str | Path, resume: bool) -> Iterator[Path]:
    """Where this worker writes: the run directory on the chief (or without a cluster); on the others a
    temporary directory removed at the end. With ``resume`` a non-chief worker starts from a copy of the
    chief's run directory, which must therefore be on a file system every worker sees."""
    if cluster is None or cluster.is_chief:
        yield Path(run_dir)
        return
    src = Path(run_dir)
    if resume and not (src / "state.json").is_file():
        raise ClusterConfigError(
            f"--resume on worker {cluster.index}: the chief's run directory {src} is not visible here, so "
            "this worker cannot restore the checkpoints the chief resumes from. Fix: put --run-dir on a "
            "file system every worker mounts at the same path."
        )
    tmp = Path(tempfile.mkdtemp(prefix=f"reds-worker{cluster.index}-"))
    try:
        target = tmp / "run"
        if resume:
            shutil.copytree(src, target)
        yield target
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
