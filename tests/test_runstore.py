"""Atomic writes: permissions follow the umask, failures leave the old file and no temporary."""

from __future__ import annotations

import os
import stat

import pytest

from reds_tf.runstore import atomic_dir, atomic_path, atomic_write_bytes


@pytest.fixture(params=[0o022, 0o077, 0o002])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def _mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def test_files_and_dirs_follow_the_umask(tmp_path, umask):
    f = atomic_write_bytes(tmp_path / "results.json", b"{}")
    assert _mode(f) == 0o666 & ~umask
    with atomic_path(tmp_path / "model.keras", suffix=".tmp.keras") as tmp:
        tmp.write_bytes(b"x")
    assert _mode(tmp_path / "model.keras") == 0o666 & ~umask
    with atomic_dir(tmp_path / "ckpt") as d:
        (d / "a").write_bytes(b"1")
    assert _mode(tmp_path / "ckpt") == 0o777 & ~umask
    # a plain open() under the same umask is the reference
    (tmp_path / "plain").write_bytes(b"")
    assert _mode(f) == _mode(tmp_path / "plain")


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = atomic_write_bytes(tmp_path / "plan.json", b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.json"]
