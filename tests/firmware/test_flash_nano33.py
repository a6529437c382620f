"""`make -C firmware flash-nano33` names exactly what is missing (arduino-cli, the core, the board)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"

FAKE_CLI = """#!/bin/sh
case "$1 $2" in
  "core list") [ -n "$FAKE_CORE" ] && echo "arduino:mbed_nano 4.1.5 4.1.5 Nano Boards"; exit 0;;
  "board list") exit 0;;
esac
[ "$1" = compile ] && { echo "compiled $*"; exit 0; }
exit 1
"""


def _flash(cli: str, **env: str) -> subprocess.CompletedProcess:
    cmd = ["make", "-s", "-C", str(FIRMWARE), "flash-nano33", f"ARDUINO_CLI={cli}"]
    return subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **env})


def test_missing_arduino_cli(tmp_path: Path) -> None:
    r = _flash(str(tmp_path / "arduino-cli"))
    assert r.returncode != 0
    assert "flash-nano33: MISSING arduino-cli" in r.stdout and "core install arduino:mbed_nano" in r.stdout


def test_missing_core_then_missing_board(tmp_path: Path) -> None:
    cli = tmp_path / "arduino-cli"
    cli.write_text(FAKE_CLI)
    cli.chmod(0o755)
    r = _flash(str(cli))
    assert r.returncode != 0 and "MISSING board core arduino:mbed_nano" in r.stdout
    r = _flash(str(cli), FAKE_CORE="1")
    assert "compiled compile --fqbn arduino:mbed_nano:nano33ble --library . nano33_reds" in r.stdout
    assert r.returncode != 0 and "MISSING board: no arduino:mbed_nano:nano33ble" in r.stdout
    assert "PORT=/dev/ttyACM0" in r.stdout
