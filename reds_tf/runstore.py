"""Atomic file writes (nothing a user made is half-written if a run is interrupted) and run directories."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .errors import NotARedsModelError, RunExistsError, RunMismatchError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary sibling path to write ``path`` by name; on success it is renamed into place.

    For writers that take a file name (``model.save``). The file gets the permissions a plain
    ``open`` would give under the user's umask (mkstemp alone makes it 0600), and an error or
    interrupt removes the temporary file and leaves the previous ``path`` untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_bytes(path: str | Path, data: bytes, fsync: bool = True) -> Path:
    """Write ``data`` to ``path`` via a temporary file in the same directory and a rename."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        if fsync:
            os.fsync(f.fileno())
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


# --- Run directories -------------------------------------------------------------------------------
# Everything one `reds run` makes lives under one directory. Progress is recorded in state.json
# (written atomically after every finished step or epoch), so an interrupted run resumes exactly where
# it stopped: finished steps are skipped, and training restarts at the epoch after its last checkpoint.

STATE_FILE = "state.json"
FINGERPRINT_FILE = "fingerprint.json"
# Fingerprint keys that only the steps after fine-tuning read (quantisation-aware fine-tuning and
# conversion), and those steps: a resume that changes only these keys redoes them.
POST_TRAINING_KEYS = ("recipe.convert.", "recipe.qat.", "recipe.qat:")
REDO_STEPS = ("qat", "convert", "dress_convert", "results")


def fingerprint_diff(old: Any, new: Any, where: str = "") -> list[str]:
    """``key: old -> new`` lines (dotted keys) for every leaf where two fingerprints differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new), key=str):
            sub = f"{where}.{k}" if where else str(k)
            out += fingerprint_diff(old.get(k, "<absent>"), new.get(k, "<absent>"), sub)
        return out
    return [] if old == new else [f"{where}: {old!r} -> {new!r}"]


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling directory; on success it replaces ``path`` in one rename.

    A crash inside the block leaves the previous ``path`` (if any) untouched and no partial files.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it 0700; follow the umask like mkdir
        yield tmp
        old = None
        if path.exists():
            # os.replace cannot overwrite a non-empty directory: move the old one aside first.
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


class RunDir:
    """The layout of one run directory and its resumable progress record.

    Layout: ``recipe.yaml``, ``state.json``, ``pretrained.keras``, ``scores*.npz``, ``plan*.json``,
    ``solve_report*.json``, ``model.keras`` (nested, shared BN), ``results.json``, ``results.md``,
    ``plots/``, ``checkpoints/<stage>/epoch-<n>/``, ``baselines/<name>/`` and ``converted/``.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._call: tuple[float, int] | None = None  # (start, index in state.json's "calls") once counting

    def begin_call(self) -> float:
        """Count this call's wall time: from now on every state write (each finished step and epoch)
        records the seconds since now under ``calls`` in state.json, so a call that is stopped or killed
        leaves the time of the work it kept. Returns the seconds the run's earlier calls recorded."""
        calls = self.state().get("calls", [])
        self._call = (time.perf_counter(), len(calls))
        self._update(lambda s: None)
        return round(sum(c["seconds"] for c in calls), 1)

    def path(self, *parts: str) -> Path:
        """A path inside the run directory (parents created)."""
        p = self.root.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    # progress record
    def state(self) -> dict[str, Any]:
        p = self.root / STATE_FILE
        if not p.exists():
            return {"done": {}, "epochs": {}}
        try:
            return json.loads(p.read_text())
        except json.JSONDecodeError as e:
            raise NotARedsModelError(
                f"{p} is not a valid run state: {e}. Fix: delete the run directory or run without --resume."
            ) from e

    def _update(self, fn: Any) -> None:
        s = self.state()
        fn(s)
        if self._call is not None:
            start, i = self._call
            s.setdefault("calls", [])[i:] = [{"seconds": round(time.perf_counter() - start, 1)}]
        atomic_write_text(self.root / STATE_FILE, json.dumps(s, indent=2, sort_keys=True) + "\n")

    def fingerprint(self) -> dict[str, Any] | None:
        """What defined this run when it started (``claim``), or None for a new directory."""
        p = self.root / FINGERPRINT_FILE
        return json.loads(p.read_text()) if p.exists() else None

    def claim(self, fingerprint: dict[str, Any], resume: bool) -> list[str]:
        """Start a run here, or check that ``--resume`` continues the run that was started here.

        Raises ``FileExistsError`` (a ``RedsError``) when the directory holds a run and ``resume`` is
        False, and ``RunMismatchError`` when it holds a run with a different fingerprint, unless only
        the recipe's ``convert`` and ``qat`` settings (and with them the schedule's name) differ:
        training before them does not depend on them, so the run is taken over with the new settings
        and its quantisation-aware fine-tuning, conversion and results are redone. Returns those
        differences (``key: old -> new`` lines; [] when there are none).
        """
        old, started = self.fingerprint(), bool(self.state()["done"] or self.state()["epochs"])
        if not resume and (started or old is not None):
            raise RunExistsError(
                f"Run directory {self.root} already holds a run. Fix: pass --resume to continue it, or "
                "choose another --run-dir."
            )
        text = json.dumps(fingerprint, indent=2, sort_keys=True) + "\n"
        if old is not None:
            diff = fingerprint_diff(old, json.loads(json.dumps(fingerprint)))
            post = [line for line in diff if line.startswith(POST_TRAINING_KEYS)]
            if post and all(line in post or line.startswith("recipe.schedule:") for line in diff):
                atomic_write_text(self.root / FINGERPRINT_FILE, text)
                self._update(lambda s: [s[p].pop(k, None) for k in REDO_STEPS for p in ("done", "epochs")])
                for step in REDO_STEPS:  # their checkpoints belong to the old settings
                    shutil.rmtree(self.root / "checkpoints" / step, ignore_errors=True)
                return diff
            if diff:
                raise RunMismatchError(
                    f"--resume: {self.root} was started with other settings, so resuming would mix "
                    f"two runs. Differences (started -> now): {'; '.join(diff)}. Fix: resume with the "
                    f"run's own settings (reds run --recipe {self.root / 'recipe.yaml'} --run-dir "
                    f"{self.root} --resume, same --data-dir), or choose another --run-dir."
                )
        elif not started:
            atomic_write_text(self.root / FINGERPRINT_FILE, text)
        return []

    def record_takeover(self, changed: list[str], earlier_wall_seconds: float | None) -> None:
        """Keep what a resume with other post-training settings changed, and the wall time of the call
        whose work it redoes, until the run's results are written: a call that stops before them (an
        interruption, a crash) leaves them for the next ``--resume``."""
        record = {"changed": list(changed), "earlier_wall_seconds": earlier_wall_seconds}
        self._update(lambda s: s.__setitem__("takeover", record))

    def takeover(self) -> tuple[list[str], float | None]:
        """(changed settings, earlier wall time) of a takeover whose results are not written yet."""
        t = self.state().get("takeover")
        if not t or self.is_done("results"):
            return [], None
        return list(t["changed"]), t["earlier_wall_seconds"]

    def is_done(self, step: str) -> bool:
        return step in self.state()["done"]

    def mark_done(self, step: str, info: dict[str, Any] | None = None) -> None:
        """Record that ``step`` finished (with optional JSON-able details)."""
        self._update(lambda s: s["done"].__setitem__(step, info or {}))

    def check_complete(self) -> None:
        """Raise ``NotARedsModelError`` if a run was started here and did not finish (``results`` is
        its last step); a directory without ``state.json`` is left to the caller."""
        if not (self.root / STATE_FILE).exists() or self.is_done("results"):
            return
        done = sorted(self.state()["done"]) or ["none"]
        raise NotARedsModelError(
            f"{self.root} is an incomplete run (steps finished: {', '.join(done)}); its results are missing "
            f"or partial. Fix: complete it with reds run --recipe {self.root / 'recipe.yaml'} --run-dir "
            f"{self.root} --resume."
        )

    def done_info(self, step: str) -> dict[str, Any]:
        return self.state()["done"].get(step, {})

    # per-epoch checkpoints
    def checkpoint_dir(self, stage: str, epoch: int) -> Path:
        return self.root / "checkpoints" / stage / f"epoch-{epoch}"

    def last_epoch(self, stage: str) -> tuple[int, dict[str, Any]]:
        """(number of finished epochs, their recorded history) of a training stage; (0, {}) if none."""
        rec = self.state()["epochs"].get(stage)
        if not rec or not self.checkpoint_dir(stage, rec["epoch"]).exists():
            return 0, {}
        return int(rec["epoch"]), rec

    def record_epoch(self, stage: str, epoch: int, record: dict[str, Any]) -> None:
        """Mark ``epoch`` (1-based) of ``stage`` finished; call after its checkpoint dir is in place."""
        self._update(lambda s: s["epochs"].__setitem__(stage, {**record, "epoch": int(epoch)}))
        # Keep only the newest checkpoint (plus the best one, which trainers keep separately).
        for old in (self.root / "checkpoints" / stage).glob("epoch-*"):
            if old.name != f"epoch-{epoch}":
                shutil.rmtree(old, ignore_errors=True)


def require_finished(rd: RunDir, step: str, files: Sequence[str], what: str) -> None:
    """Raise NotARedsModelError unless ``rd`` has finished ``step`` and holds every one of ``files``."""
    missing = [name for name in files if not (rd.root / name).is_file()]
    if not rd.is_done(step) or missing:
        raise NotARedsModelError(
            f"{rd.root} has no complete {what} (missing: {', '.join(missing) or 'finished fine-tuning'}). "
            f"Fix: finish the run with reds run --recipe {rd.root / 'recipe.yaml'} --run-dir {rd.root} "
            "--resume."
        )
