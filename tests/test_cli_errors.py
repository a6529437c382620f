"""`reds run` / `reds eval`: every common mistake is one `Error:` line naming the option, before any work.

Each case runs in an empty working directory and must leave it as it was (nothing written), exit with
click's usage code 2 (or 1 for a run directory that cannot be shown), and print no traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from reds_tf.cli import main

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO / "models" / "ds_cnn_s-fashion_mnist.yaml"
KWS = REPO / "models" / "ds_cnn_s-speech_commands.yaml"


def _recipe(tmp: Path, text: str) -> str:
    p = tmp / "inputs" / "r.yaml"
    p.write_text(text)
    return str(p)


def _ok_recipe(**over: str) -> str:
    fields = {"model": "ds_cnn_fmnist", "dataset": "fashion_mnist", **over}
    return "".join(f"{k}: {v}\n" for k, v in fields.items())


def _garbage(tmp: Path) -> Path:
    p = tmp / "inputs" / "model.keras"
    p.write_bytes(b"not a keras file")
    return p


def _started_run(tmp: Path, finetuned: bool) -> str:
    d = tmp / "inputs" / "run"
    d.mkdir()
    done = {"pretrain": {}, "finetune": {}} if finetuned else {"pretrain": {}}
    (d / "state.json").write_text(json.dumps({"done": done, "epochs": {}}))
    (d / "recipe.yaml").write_text(_ok_recipe())
    return str(d)


CASES = [
    # (id, args builder, exit code, text the message must hold)
    ("recipe-missing", lambda t: ["run", "--recipe", str(t / "nope.yaml")], 2, "Recipe file not found"),
    ("recipe-not-yaml", lambda t: ["run", "--recipe", _recipe(t, "model: [")], 2, "not valid YAML"),
    (
        "recipe-unknown-key",
        lambda t: ["run", "--recipe", _recipe(t, _ok_recipe(pretrian="{}"))],
        2,
        "pretrian",
    ),
    (
        "model-misspelled",
        lambda t: ["run", "--recipe", _recipe(t, _ok_recipe(model="ds_cnn_fmnsit"))],
        2,
        "Unknown model",
    ),
    (
        "model-file-missing",
        lambda t: ["run", "--recipe", _recipe(t, _ok_recipe(model="my/model.keras"))],
        2,
        "Model file not found",
    ),
    (
        "model-options-key",
        lambda t: ["run", "--recipe", _recipe(t, _ok_recipe(model_options="{filterz: 8}"))],
        2,
        "Unknown model_options for 'ds_cnn_fmnist'. Received: ['filterz']",
    ),
    (
        "model-options-pool",
        lambda t: ["run", "--recipe", _recipe(t, _ok_recipe(model_options="{pool: [13]}"))],
        2,
        "pool must be two positive integers [height, width]. Received: pool=[13]",
    ),
    (
        "distill-weight-out-of-range",
        lambda t: ["run", "--recipe", _recipe(t, _ok_recipe(finetune="{distill_weight: 2}"))],
        2,
        "distill_weight must be in [0, 1] (0 = no distillation). Received: 2.0",
    ),
    (
        "dataset-misspelled",
        lambda t: ["run", "--recipe", _recipe(t, _ok_recipe(dataset="fashion_mnsit"))],
        2,
        "fashion_mnsit",
    ),
    (
        "schedule-unknown",
        lambda t: ["run", "--recipe", str(DEFAULT), "--schedule", "fulll"],
        2,
        "Invalid value for '--schedule'",
    ),
    (
        "limit-zero",
        lambda t: ["run", "--recipe", str(DEFAULT), "--limit", "0"],
        2,
        "Invalid value for '--limit'",
    ),
    (
        "limit-negative",
        lambda t: ["run", "--recipe", str(DEFAULT), "--limit", "-5"],
        2,
        "Invalid value for '--limit'",
    ),
    (
        "limit-not-int",
        lambda t: ["run", "--recipe", str(DEFAULT), "--limit", "ten"],
        2,
        "Invalid value for '--limit'",
    ),
    (
        "run-dir-under-file",
        lambda t: ["run", "--recipe", str(DEFAULT), "--run-dir", str(t / "inputs" / "f" / "r")],
        2,
        "Invalid value for '--run-dir'",
    ),
    (
        "run-dir-in-proc",
        lambda t: ["run", "--recipe", str(DEFAULT), "--run-dir", "/proc/reds_run"],
        2,
        "Invalid value for '--run-dir'",
    ),
    ("kws-without-data-dir", lambda t: ["run", "--recipe", str(KWS)], 2, "Invalid value for '--data-dir'"),
    (
        "kws-wrong-layout",
        lambda t: ["run", "--recipe", str(KWS), "--data-dir", str(t / "inputs")],
        2,
        "Invalid value for '--data-dir'",
    ),
    (
        "strategy-unknown",
        lambda t: ["run", "--recipe", str(DEFAULT), "--strategy", "tpu"],
        2,
        "Invalid value for '--strategy'",
    ),
    (
        "model-file-unreadable",
        lambda t: [
            "run",
            "--recipe",
            _recipe(t, _ok_recipe(model=str(_garbage(t)))),
            "--run-dir",
            str(t / "run"),
        ],
        1,
        "Cannot read a Keras model",
    ),
    ("eval-not-a-run", lambda t: ["eval", str(t / "inputs")], 1, "No results.json"),
    ("eval-incomplete-run", lambda t: ["eval", _started_run(t, finetuned=False)], 1, "incomplete run"),
    (
        "eval-split-without-plan",
        lambda t: ["eval", _started_run(t, finetuned=True), "--split", "test"],
        1,
        "missing: plan.json, permuted.keras, model.keras",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_error_line_and_writes_nothing(tmp_path, monkeypatch, case):
    _, args, code, text = case
    (tmp_path / "inputs").mkdir()
    (tmp_path / "inputs" / "f").write_text("a file, not a directory")
    argv = args(tmp_path)
    monkeypatch.chdir(tmp_path)
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    out = CliRunner().invoke(main, argv)
    assert out.exit_code == code, out.output
    assert text in out.output, out.output
    assert "Traceback" not in out.output and out.exception is None or isinstance(out.exception, SystemExit)
    assert "Error:" in out.output
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before


def test_recipe_mistakes_are_reported_before_tensorflow_is_imported(tmp_path):
    bad = tmp_path / "r.yaml"
    bad.write_text(_ok_recipe(model_options="{filterz: 8}"))
    code = (
        "import sys\nfrom reds_tf.cli import main\n"
        "try:\n    main(['run', '--recipe', sys.argv[1]])\n"
        "except SystemExit as e:\n    print('exit', e.code, 'tensorflow' in sys.modules)\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert r.stdout.strip().endswith("exit 2 False"), r.stdout + r.stderr
    assert "Unknown model_options" in r.stderr
