"""Several workers: TF_CONFIG checks, the local launcher, DATA sharding, and (slow) a 2-worker run of the
tiny recipe against a one-process MirroredStrategy run on 2 logical CPUs, and a killed-and-resumed cluster.

Every worker is a real process with its own TensorFlow runtime talking gRPC on localhost.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from reds_tf import launch, multiworker

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "reds_tf.cli"]
TINY = ROOT / "models" / "tiny-fashion_mnist.yaml"


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3", **extra}


def _tf_config(workers: list[str], index: int) -> str:
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})


def _run_cli(args: list[str], tf_config: str, timeout: float = 60, **extra: str):
    t0 = time.monotonic()
    out = subprocess.run(CLI + args, capture_output=True, text=True, env=_env(TF_CONFIG=tf_config, **extra),
                         timeout=timeout, cwd=ROOT)  # fmt: skip
    return out, time.monotonic() - t0


# --- TF_CONFIG checks (no TensorFlow) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (None, "TF_CONFIG is not set"),
        ('{"cluster": {"worker": ["a:1"]', "not valid JSON"),
        ('["a:1"]', "must be a JSON object"),
        ('{"task": {"type": "worker", "index": 0}}', "no 'cluster' object"),
        ('{"cluster": {"worker": ["a:1"], "ps": ["b:2"]}, "task": {"type": "worker", "index": 0}}', "'ps'"),
        ('{"cluster": {"worker": []}, "task": {"type": "worker", "index": 0}}', "non-empty list"),
        ('{"cluster": {"worker": ["a:1", "b"]}, "task": {"type": "worker", "index": 0}}', "'b' is not host"),
        ('{"cluster": {"worker": ["a:99999"]}, "task": {"type": "worker", "index": 0}}', "is not host:port"),
        ('{"cluster": {"worker": ["a:1", "a:1"]}, "task": {"type": "worker", "index": 0}}', "twice"),
        ('{"cluster": {"worker": ["a:1"]}}', "no 'task' object"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}', "type must be 'worker'"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": "0"}}', "must be an integer"),
        ('{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 2}}', "out of range"),
    ],
)
def test_tf_config_problems_are_named_with_the_fix(raw, problem):
    with pytest.raises(multiworker.ClusterConfigError) as e:
        multiworker.read_tf_config({} if raw is None else {"TF_CONFIG": raw})
    assert problem in str(e.value)
    assert "Fix:" in str(e.value)


def test_tf_config_read():
    c = multiworker.read_tf_config({"TF_CONFIG": _tf_config(["h0:10", "[::1]:11"], 1)})
    assert c.workers == ("h0:10", "[::1]:11") and c.index == 1 and not c.is_chief and c.port == 11
    assert launch.tf_configs([5, 6])[1] == _tf_config(["127.0.0.1:5", "127.0.0.1:6"], 1)


def test_cluster_timeout_env():
    assert multiworker.timeout_seconds({}) == multiworker.DEFAULT_TIMEOUT
    assert multiworker.timeout_seconds({"REDS_CLUSTER_TIMEOUT": "12.5"}) == 12.5
    with pytest.raises(multiworker.ClusterConfigError, match="REDS_CLUSTER_TIMEOUT"):
        multiworker.timeout_seconds({"REDS_CLUSTER_TIMEOUT": "soon"})


# --- the command line's errors: each within 60 s, one Error: line, no traceback -----------------------


def _assert_error(out, seconds, *words, rc=None):
    assert seconds < 60, f"took {seconds:.0f} s"
    assert out.returncode != 0 if rc is None else out.returncode == rc, out.stderr[-2000:]
    errors = [line for line in out.stderr.splitlines() if line.startswith("Error:")]
    assert errors, out.stderr[-2000:]
    assert all(w in errors[-1] for w in words), errors[-1]
    assert "Traceback" not in out.stderr + out.stdout


@pytest.mark.parametrize(
    ("tf_config", "words"),
    [
        ('{"cluster": {"worker": ["localhost:1"]', ["TF_CONFIG is not valid JSON", "Fix:"]),
        (_tf_config(["localhost:1", "localhost:2"], 2), ["task index 2 is out of range", "Fix:"]),
    ],
)
def test_run_refuses_a_bad_tf_config_before_tensorflow_starts(tmp_path, tf_config, words):
    args = ["run", "--recipe", str(TINY), "--run-dir", str(tmp_path / "run"), "--strategy", "multiworker"]
    out, seconds = _run_cli(args, tf_config)
    _assert_error(out, seconds, *words, rc=2)
    assert not (tmp_path / "run").exists()


def test_run_refuses_a_port_in_use(tmp_path):
    with socket.socket() as held:
        held.bind(("", 0))
        held.listen()
        port = held.getsockname()[1]
        cfg = _tf_config([f"localhost:{port}", f"localhost:{launch.free_ports(1)[0]}"], 0)
        args = ["run", "--recipe", str(TINY), "--run-dir", str(tmp_path / "run"), "--strategy", "multiworker"]
        out, seconds = _run_cli(args, cfg)
    _assert_error(out, seconds, f"Port {port}", "in use", "Fix:", rc=2)
    assert not (tmp_path / "run").exists()


def test_chief_ends_when_a_worker_never_comes_up(tmp_path):
    # Worker 1's port is free and nobody ever listens there. A 10 s start-up timeout keeps the test short;
    # the default (multiworker.DEFAULT_TIMEOUT, 30 s) ends the same way within a minute.
    cfg = _tf_config([f"localhost:{p}" for p in launch.free_ports(2)], 0)
    args = ["run", "--recipe", str(TINY), "--run-dir", str(tmp_path / "run"), "--strategy", "multiworker"]
    out, seconds = _run_cli(args, cfg, timeout=90, REDS_CLUSTER_TIMEOUT="10")
    _assert_error(out, seconds, "worker 0 waited 10 s", "not all of them came up", "Fix:")
    assert not (tmp_path / "run").exists()


# --- the launcher --------------------------------------------------------------------------------------

FAIL_ONE = (
    "import json, os, sys, time; i = json.loads(os.environ['TF_CONFIG'])['task']['index']; "
    "print('worker', i, 'up', flush=True); time.sleep(1); sys.exit(3) if i == 1 else time.sleep(300)"
)


def test_launcher_stops_every_worker_when_one_fails():
    t0 = time.monotonic()
    cmd = [sys.executable, "-m", "reds_tf.launch", "--workers", "3", "--", sys.executable, "-c", FAIL_ONE]
    out = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=60)
    assert time.monotonic() - t0 < 30
    assert out.returncode == 3
    assert "worker 0 up" in out.stdout  # the chief's output is streamed
    assert "[worker 1] worker 1 up" in out.stderr  # the failed worker's last lines, prefixed
    assert "Error: worker 1 exited with status 3; stopped the other workers." in out.stderr


def test_reds_launch_gives_each_worker_its_tf_config():
    show = "import os; print(os.environ['TF_CONFIG'], flush=True)"
    out = subprocess.run(CLI + ["launch", "--workers", "2", "--", sys.executable, "-c", show],
                         capture_output=True, text=True, env=_env(), timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    cfg = multiworker.read_tf_config({"TF_CONFIG": out.stdout.strip()})  # only the chief's output shows
    assert cfg.index == 0 and cfg.num_workers == 2
    assert all(w.startswith("127.0.0.1:") for w in cfg.workers)


# --- DATA sharding: each of 2 workers sees its own half of every global batch --------------------------

SHARDS = textwrap.dedent(
    """
    import json, sys
    from reds_tf import multiworker, train
    from reds_tf._keras import tf
    cluster = multiworker.read_tf_config()
    strategy = multiworker.make_strategy(cluster)
    # 4 global batches of 10, in the same order on every pass
    ds = tf.data.Dataset.range(40).shuffle(40, seed=1, reshuffle_each_iteration=False).batch(10)
    local = lambda x: strategy.experimental_local_results(x)[0].numpy()  # this worker's one replica
    seen = [sorted(int(v) for v in local(x)) for x in
            strategy.experimental_distribute_dataset(train._shardable(ds, strategy))]
    whole = [sorted(int(v) for v in x.numpy()) for x in ds]
    print(json.dumps({"index": cluster.index, "seen": seen, "whole": whole}), flush=True)
    """
)


def test_two_workers_split_every_global_batch(tmp_path):
    script = tmp_path / "shards.py"
    script.write_text(SHARDS)
    configs = launch.tf_configs(launch.free_ports(2))
    procs = [subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=_env(TF_CONFIG=c)) for c in configs]  # fmt: skip
    res = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=120)
        assert p.returncode == 0, stderr[-3000:]
        res.append(json.loads(stdout.strip().splitlines()[-1]))
    assert res[0]["whole"] == res[1]["whole"]  # the same shuffled stream on both workers
    assert len(res[0]["seen"]) == len(res[1]["seen"]) == 4  # as many steps as global batches
    for step, batch in enumerate(res[0]["whole"]):
        a, b = res[0]["seen"][step], res[1]["seen"][step]
        assert len(a) == len(b) == 5 and not set(a) & set(b)  # halves, distinct ...
        assert sorted(a + b) == batch  # ... that make up exactly the one-process global batch


# --- slow: the tiny recipe on 2 workers vs one process with 2 logical CPUs; kill and resume -------------

# One process, MirroredStrategy over 2 logical CPU devices: the same 2 replicas and global batch.
MIRRORED_2CPU = textwrap.dedent(
    """
    import sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from reds_tf.cli import main
    main(sys.argv[1:])
    """
)


def _recipe(tmp: Path) -> Path:
    """The tiny recipe with 2 fine-tuning epochs (so a worker can be killed after the first)."""
    r = yaml.safe_load(TINY.read_text())
    r["finetune"]["epochs"] = 2
    path = tmp / "tiny-2ft.yaml"
    path.write_text(yaml.safe_dump(r))
    return path


def _results(run: Path) -> dict:
    return json.loads((run / "results.json").read_text())


def _ft_losses(run: Path) -> list[list[float]]:
    state = json.loads((run / "state.json").read_text())
    ft = state["done"]["finetune"]
    return [e["loss"] for e in ft["history"]["epochs"] + ft["bn_history"]["epochs"]]


def _launch_run(recipe: Path, run: Path, *more: str, timeout: float = 900):
    """Launch 2 workers; their temporary directories go under run's sibling ``tmp/`` (TMPDIR)."""
    cmd = [sys.executable, "-m", "reds_tf.launch", "--workers", "2", "--", *CLI, "run", "--recipe",
           str(recipe), "--run-dir", str(run), "--strategy", "multiworker", "--quiet", *more]  # fmt: skip
    tmpdir = run.parent / "tmp"
    tmpdir.mkdir(exist_ok=True)
    env = _env(TMPDIR=str(tmpdir))
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mw")
    recipe = _recipe(tmp)
    out = _launch_run(recipe, tmp / "multi")
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    script = tmp / "mirrored_2cpu.py"
    script.write_text(MIRRORED_2CPU)
    ref = subprocess.run([sys.executable, str(script), "run", "--recipe", str(recipe), "--run-dir",
                          str(tmp / "one"), "--strategy", "mirrored", "--quiet"],
                         capture_output=True, text=True, env=_env(), timeout=900, cwd=ROOT)  # fmt: skip
    assert ref.returncode == 0, ref.stderr[-3000:]
    return tmp, recipe, out


def _assert_match(a: Path, b: Path) -> None:
    """The bound. Both runs take the same optimizer steps on the same global batches (DATA sharding
    splits each global batch between the workers exactly as MirroredStrategy splits it between its two
    devices), so the arithmetic is the same; what differs is who adds the two replicas' gradients (a
    cross-process ring all-reduce vs an in-process sum). A sum of two float32 values does not depend on
    its order, so we expect equal numbers, and allow losses within 1e-5 relative and accuracies within one
    test example, in case a kernel picks another summation order in another process."""
    ra, rb = _results(a), _results(b)
    assert (a / "plan.json").read_text() == (b / "plan.json").read_text()
    n_test = ra["data"]["sizes"]["test"]
    for la, lb in zip(ra["levels"], rb["levels"], strict=True):
        for key in ("val_accuracy", "test_accuracy"):
            assert abs(la[key] - lb[key]) <= 1.0 / n_test + 1e-9, (key, la, lb)
    for ea, eb in zip(_ft_losses(a), _ft_losses(b), strict=True):
        assert ea == pytest.approx(eb, rel=1e-5)


@pytest.mark.slow
def test_two_workers_match_one_process_on_two_logical_cpus(two_runs):
    tmp, _, out = two_runs
    _assert_match(tmp / "multi", tmp / "one")
    dist = _results(tmp / "multi")["distribution"]
    assert (dist["workers"], dist["replicas"], dist["global_batch"]) == (2, 2, 50)
    assert dist["per_replica_batch"] == 25
    assert _results(tmp / "one")["distribution"]["replicas"] == 2
    # Only the chief wrote: the run directory is the only one, and worker 1's temporary one is gone.
    names = ["mirrored_2cpu.py", "multi", "one", "tiny-2ft.yaml", "tmp"]
    assert sorted(p.name for p in tmp.iterdir()) == names
    assert not list((tmp / "tmp").glob("reds-*")), list((tmp / "tmp").iterdir())
    assert "results:" in out.stdout  # the chief's table reached the launcher's output


def _finished_epochs(run: Path, stage: str) -> int:
    try:
        return int(json.loads((run / "state.json").read_text())["epochs"].get(stage, {}).get("epoch", 0))
    except (OSError, ValueError):
        return 0


@pytest.mark.slow
def test_killed_worker_then_resumed_cluster_matches(two_runs):
    tmp, recipe, _ = two_runs
    run = tmp / "killed"
    configs = launch.tf_configs(launch.free_ports(2))
    args = ["run", "--recipe", str(recipe), "--run-dir", str(run), "--strategy", "multiworker", "--quiet"]
    (tmp / "tmp-killed").mkdir()  # a SIGKILLed worker cannot remove its temporary directory
    env = [_env(TF_CONFIG=c, TMPDIR=str(tmp / "tmp-killed")) for c in configs]
    procs = [subprocess.Popen(CLI + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=e, cwd=ROOT) for e in env]  # fmt: skip
    try:
        deadline = time.monotonic() + 600
        while _finished_epochs(run, "finetune") < 1:
            assert time.monotonic() < deadline and procs[0].poll() is None, procs[0].communicate()[1][-3000:]
            time.sleep(0.2)
        procs[1].send_signal(signal.SIGKILL)  # worker 1 dies in the second fine-tuning epoch
        _, err = procs[0].communicate(timeout=240)  # the chief notices on its own
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert procs[0].returncode != 0
    assert "Error:" in err and "Traceback" not in err, err[-3000:]
    assert not (run / "results.json").exists()
    out = _launch_run(recipe, run, "--resume")
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    state = json.loads((run / "state.json").read_text())
    assert state["done"]["finetune"]["history"]["resumed_from"] >= 1
    _assert_match(run, tmp / "multi")
