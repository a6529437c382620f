"""Find a dataset on disk and explain, when it is missing, what layout was expected and where to get it.

Pure: no TensorFlow import, so ``make train-kws`` / ``make train-vww`` can check ``DATA_DIR`` in well
under a second before anything heavy starts. Every failure is a :class:`DatasetLayoutError` whose
message has four parts: the problem (with the received value), the expected layout drawn as a tree,
where the dataset comes from, and the fix.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

from reds_tf.errors import DatasetLayoutError

FASHION_MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
# Debian's dataset-fashion-mnist package, then keras' download cache.
FASHION_MNIST_DEFAULT_DIRS = (
    Path("/usr/share/datasets/fashion-mnist"),
    Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets" / "fashion-mnist",
)
NPZ_FILES = ("train.npz", "test.npz")  # + optional val.npz
CIFAR10_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch", "batches.meta")
VWW_FOLDER = "vw_coco2014_96"
VWW_CLASSES = ("non_person", "person")  # alphabetical, as flow_from_directory assigns them

_TREES = {
    "fashion_mnist": """\
<data_dir>/
  train-images-idx3-ubyte.gz   (IDX, magic 0x00000803, 60000 x 28 x 28 uint8)
  train-labels-idx1-ubyte.gz   (IDX, magic 0x00000801, 60000 uint8)
  t10k-images-idx3-ubyte.gz    (10000 x 28 x 28)
  t10k-labels-idx1-ubyte.gz    (10000)""",
    "speech_commands": """\
<data_dir>/                       (speech_commands_v0.02.tar.gz extracted; no top folder)
  validation_list.txt  testing_list.txt     (optional: else the sha1 hash split rule)
  _background_noise_/*.wav                   (optional: noise augmentation and _silence_)
  down/ go/ left/ no/ off/ on/ right/ stop/ up/ yes/   (+ other word folders -> _unknown_)
    <8 hex speaker>_nohash_<n>.wav          (16 kHz mono 16-bit PCM, <= 1 s)""",
    "vww": """\
<data_dir>/vw_coco2014_96/        (MLPerf Tiny layout; data_dir may also BE this folder)
  person/*.jpg      -> label 1
  non_person/*.jpg  -> label 0
or the TFRecord layout of tensorflow/models research/slim build_visualwakewords_data.py:
<data_dir>/
  train.record-00000-of-000NN ...   (tf.train.Example: image/encoded, image/class/label)
  val.record-00000-of-000NN ...     (used as the test split)""",
    "cifar10": """\
<data_dir>/cifar-10-batches-py/   (cifar-10-python.tar.gz extracted; data_dir may also BE this folder)
  data_batch_1 ... data_batch_5  test_batch  batches.meta   (python pickles)""",
    "npz": """\
<data_dir>/
  train.npz   x: (N, *input_shape) uint8 (scaled by 1/255) or float (used as is); y: (N,) int labels 0..C-1
  test.npz    x, y as in train.npz (the test split, only for the report)
  val.npz     optional; without it the validation split is carved from train.npz""",
}

_SOURCES = {
    "fashion_mnist": (
        "Fashion-MNIST (Zalando, MIT): `apt-get install dataset-fashion-mnist` (Debian/Ubuntu) puts the "
        "files in /usr/share/datasets/fashion-mnist/, or download the four .gz files from "
        "https://github.com/zalandoresearch/fashion-mnist"
    ),
    "speech_commands": (
        "Google Speech Commands v0.02 (CC BY 4.0): "
        "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz (2.4 GB), extract with "
        "`mkdir sc && tar xzf speech_commands_v0.02.tar.gz -C sc`. For a SYNTHETIC demo set: "
        "`python -m reds_tf.data.synth_kws OUT_DIR --per-word 100`"
    ),
    "vww": (
        "Visual Wake Words: vw_coco2014_96.tar.gz from the MLPerf Tiny benchmark "
        "(github.com/mlcommons/tiny, benchmark/training/visual_wake_words), or build TFRecords from "
        "COCO 2014 with tensorflow/models research/slim/datasets/build_visualwakewords_data.py"
    ),
    "cifar10": "CIFAR-10 python version: https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    "npz": (
        "your own data, written with numpy: np.savez('train.npz', x=x_train, y=y_train) (and test.npz, "
        "optionally val.npz)"
    ),
}


def layout_error(name: str, problem: str, fix: str | None = None) -> DatasetLayoutError:
    """Build the standard error: problem, expected layout tree, source of the data, fix."""
    fix = fix or "point data_dir (DATA_DIR=... for make) at a folder with the layout above."
    return DatasetLayoutError(
        f"{problem}\nExpected layout for {name!r}:\n{_TREES[name]}\n"
        f"Where it comes from: {_SOURCES[name]}.\nFix: {fix}"
    )


def _require_dir(name: str, data_dir: str | os.PathLike | None) -> Path:
    if data_dir is None or str(data_dir) == "":
        raise layout_error(name, f"No data directory given for {name!r}. Received: data_dir={data_dir!r}.")
    path = Path(data_dir).expanduser()
    if not path.is_dir():
        raise layout_error(name, f"Data directory does not exist. Received: data_dir={str(path)!r}.")
    return path


def find_fashion_mnist(data_dir: str | os.PathLike | None) -> Path:
    """The folder holding the four IDX .gz files: ``data_dir``, else Debian's, else keras' cache."""
    candidates = [Path(data_dir).expanduser()] if data_dir else list(FASHION_MNIST_DEFAULT_DIRS)
    for cand in candidates:
        if all((cand / f).is_file() for f in FASHION_MNIST_FILES):
            return cand
    looked = ", ".join(str(c) for c in candidates)
    missing = [f for f in FASHION_MNIST_FILES if not (candidates[0] / f).is_file()]
    raise layout_error(
        "fashion_mnist",
        f"Fashion-MNIST IDX files not found. Looked in: {looked}. Missing in {candidates[0]}: {missing}.",
        "`sudo apt-get install dataset-fashion-mnist`, or pass data_dir= / --data-dir pointing at the "
        "folder with the four .gz files.",
    )


def find_speech_commands(data_dir: str | os.PathLike | None) -> Path:
    """The Speech Commands root: the folder that holds the word folders."""
    from reds_tf.data.speech_commands_index import KEYWORDS  # pure; avoids duplicating the word list

    root = _require_dir("speech_commands", data_dir)
    present = [w for w in KEYWORDS if (root / w).is_dir()]
    if not present:
        # Be forgiving about one extra level (e.g. the tarball extracted into a named folder).
        subs = [d for d in sorted(root.iterdir()) if d.is_dir() and (d / "yes").is_dir()]
        if len(subs) == 1:
            return subs[0]
        raise layout_error(
            "speech_commands",
            f"No keyword folders ({', '.join(KEYWORDS)}) found. Received: data_dir={str(root)!r} "
            f"containing {_listing(root)}.",
        )
    if not any(glob.iglob(str(root / present[0] / "*.wav"))):
        raise layout_error(
            "speech_commands",
            f"Keyword folder {present[0]!r} holds no .wav files. Received: data_dir={str(root)!r}.",
        )
    return root


def find_vww(data_dir: str | os.PathLike | None) -> tuple[str, Path]:
    """(``"folder"`` or ``"tfrecord"``, path). Accepts the folder containing vw_coco2014_96 or it itself."""
    root = _require_dir("vww", data_dir)
    for cand in (root / VWW_FOLDER, root):
        if all((cand / c).is_dir() for c in VWW_CLASSES):
            if not any(image_files(cand / c) for c in VWW_CLASSES):
                raise layout_error(
                    "vww", f"person/ and non_person/ hold no .jpg/.png images. Received: {str(cand)!r}."
                )
            return "folder", cand
    if glob.glob(str(root / "train.record-*")):
        if not glob.glob(str(root / "val.record-*")):
            raise layout_error(
                "vww",
                f"TFRecord layout has train.record-* shards but no val.record-* shards (the test split). "
                f"Received: data_dir={str(root)!r}.",
            )
        return "tfrecord", root
    raise layout_error(
        "vww",
        f"Neither {VWW_FOLDER}/{{person,non_person}} nor train.record-* shards found. Received: "
        f"data_dir={str(root)!r} containing {_listing(root)}.",
    )


def find_cifar10(data_dir: str | os.PathLike | None) -> Path:
    """The ``cifar-10-batches-py`` folder (``data_dir`` may be it or contain it)."""
    root = _require_dir("cifar10", data_dir)
    for cand in (root / "cifar-10-batches-py", root):
        if all((cand / f).is_file() for f in CIFAR10_FILES):
            return cand
    cand = root / "cifar-10-batches-py" if (root / "cifar-10-batches-py").is_dir() else root
    missing = [f for f in CIFAR10_FILES if not (cand / f).is_file()]
    raise layout_error(
        "cifar10", f"CIFAR-10 pickle batches missing: {missing}. Received: data_dir={str(root)!r}."
    )


def find_npz(data_dir: str | os.PathLike | None) -> Path:
    """The folder holding ``train.npz`` and ``test.npz`` (and optionally ``val.npz``)."""
    root = _require_dir("npz", data_dir)
    missing = [f for f in NPZ_FILES if not (root / f).is_file()]
    if missing:
        raise layout_error(
            "npz",
            f"NPZ files missing: {missing}. Received: data_dir={str(root)!r} containing {_listing(root)}.",
        )
    return root


def image_files(folder: Path) -> list[str]:
    """Sorted .jpg/.jpeg/.png paths (any case) directly inside ``folder``."""
    return sorted(
        p for ext in ("jpg", "jpeg", "png", "JPG", "JPEG", "PNG") for p in glob.glob(str(folder / f"*.{ext}"))
    )


def _listing(path: Path, n: int = 8) -> str:
    names = sorted(p.name for p in path.iterdir())
    more = f" ... (+{len(names) - n})" if len(names) > n else ""
    return "[" + ", ".join(names[:n]) + more + "]" if names else "nothing"


FINDERS = {
    "fashion_mnist": find_fashion_mnist,
    "speech_commands": find_speech_commands,
    "vww": lambda d: find_vww(d)[1],
    "cifar10": find_cifar10,
    "npz": find_npz,
}
