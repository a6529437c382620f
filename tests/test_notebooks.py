"""The Jupyter walkthroughs under notebooks/ run top to bottom on real Fashion-MNIST."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
#: what each notebook prints once its last step worked
MARKERS = {
    "reds_walkthrough": "test accuracy",
    "bring_your_own_model": "test accuracy",
    "device": "every level bit-exact with TFLM in every build",
}


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path, tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    from nbclient import NotebookClient

    if not Path("/usr/share/datasets/fashion-mnist").exists():
        pytest.skip("needs Debian's dataset-fashion-mnist (make install-system)")
    if path.stem == "device":
        pytest.importorskip("unicorn")
        if shutil.which("arm-none-eabi-gcc") is None:
            pytest.skip("needs the arm-none-eabi toolchain (make install-system)")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert MARKERS[path.stem] in text
    errors = [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]
    assert not errors


def test_notebooks_exist_and_are_valid() -> None:
    nbformat = pytest.importorskip("nbformat")
    assert NOTEBOOKS, "notebooks/ has no walkthrough"
    assert {p.stem for p in NOTEBOOKS} == set(MARKERS), "a notebook without a marker in MARKERS"
    for path in NOTEBOOKS:
        nbformat.validate(nbformat.read(path, as_version=4))
