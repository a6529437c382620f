"""``reds convert`` on bad input: one ``Error:`` line naming the problem and the fix, never a traceback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from reds_tf.cli import main


@pytest.fixture()
def paths(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "empty").mkdir()
    (tmp_path / "notrun").mkdir()
    (tmp_path / "notrun" / "notes.txt").write_text("x")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "model.keras").write_bytes(b"not a keras zip")
    (tmp_path / "junk.keras").write_bytes(b"not a keras zip")
    (tmp_path / "afile").write_text("x")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "submodel_0.tflite").write_bytes(b"old")
    np.savez(tmp_path / "noxy.npz", a=np.zeros(3))
    np.savez(tmp_path / "cal.npz", x=np.zeros((4, 8), np.float32))
    return {"t": tmp_path}


CASES = [  # (arguments with {t} = tmp dir, the message the Error: line must contain)
    ("{t}/empty --out {t}/o", "{t}/empty has no model.keras, so it is not a reds run directory"),
    ("{t}/notrun --out {t}/o", "{t}/notrun has no model.keras"),
    ("{t}/run --out {t}/o --levels 0,x", "--levels must be 'all' or comma-separated level indices"),
    ("{t}/run --out {t}/o --levels ,", "--levels must be 'all' or comma-separated level indices"),
    ("{t}/run --out {t}/o --calibration 0", "--calibration must be >= 1 samples. Received: 0"),
    ("{t}/run --out {t}/afile/sub", "--out {t}/afile/sub cannot be created"),
    ("{t}/run --out {t}/full", "--out {t}/full already holds 1 file(s) (submodel_0.tflite)"),
    ("{t}/run --out {t}/o", "{t}/run records no dataset (no recipe.yaml). Fix: pass --calibration-data"),
    ("{t}/run --out {t}/o --calibration-data {t}/noxy.npz", "has no array 'x'"),
    ("{t}/junk.keras --out {t}/o --calibration-data {t}/cal.npz", "is not a Keras model reds_tf can read"),
    ("{t}/afile --out {t}/o --calibration-data {t}/cal.npz", "is not a Keras model reds_tf can read"),
    ("{t}/run --out {t}/o --strategy fast", "Invalid value for '--strategy'"),
]


@pytest.mark.parametrize("args, message", CASES)
def test_bad_input_gives_one_clear_error(args: str, message: str, paths: dict[str, Path]) -> None:
    t = str(paths["t"])
    res = CliRunner().invoke(main, ["convert", *args.format(t=t).split()])
    assert res.exit_code != 0
    assert "Traceback" not in res.output and not isinstance(res.exception, (ValueError, TypeError, OSError))
    assert "Error: " in res.output and message.format(t=t) in res.output, res.output


def test_overwrite_keeps_the_earlier_conversion_when_the_new_one_fails(paths: dict[str, Path]) -> None:
    t = paths["t"]
    res = CliRunner().invoke(main, ["convert", f"{t}/junk.keras", "--out", f"{t}/full", "--overwrite",
                                    "--calibration-data", f"{t}/cal.npz"])  # fmt: skip
    assert "is not a Keras model reds_tf can read" in res.output
    assert [p.name for p in (t / "full").iterdir()] == ["submodel_0.tflite"]  # untouched, no partial files
    assert not [p for p in t.iterdir() if ".partial-" in p.name]
