"""Small fake dataset trees in EXACTLY the real on-disk layouts (dataset-formats.md section 5).

Used by the loader tests and by pipeline / Makefile tests (``make train-kws DATA_DIR=<fixture>``).
The contents are simple but learnable: each keyword is a tone at its own pitch, "person" images hold a
bright upright figure, CIFAR / Fashion-MNIST classes have distinct mean intensities, so a tiny training
run can rise above chance. Every builder is deterministic given ``seed`` and returns the root to pass
as ``data_dir``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import struct
import wave
from pathlib import Path

import numpy as np

from reds_tf.data.speech_commands_index import KEYWORDS, which_set

SR = 16_000
DEFAULT_WORDS = (*KEYWORDS, "marvin", "zero", "bed")


def write_wav(path: Path, audio: np.ndarray, rate: int = SR, channels: int = 1) -> None:
    """16-bit PCM little-endian wav (the Speech Commands format when rate=16000, channels=1)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = np.clip(np.round(np.asarray(audio) * 32767), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


def _speakers(n: int, seed: int) -> list[str]:
    """``n`` 8-hex speaker ids such that the hash rule puts at least n//5 (>= 1) in val and in test."""
    want = {"val": max(1, n // 5), "test": max(1, n // 5)}
    want["train"] = n - want["val"] - want["test"]
    got: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    i = 0
    while any(len(got[s]) < want[s] for s in got):
        sid = hashlib.sha1(f"speaker-{seed}-{i}".encode()).hexdigest()[:8]
        split = which_set(f"{sid}_nohash_0.wav")
        if len(got[split]) < want[split]:
            got[split].append(sid)
        i += 1
    return sorted(got["train"] + got["val"] + got["test"])


def make_speech_commands(
    root: str | Path,
    *,
    words: tuple[str, ...] = DEFAULT_WORDS,
    speakers: int = 10,
    reps: int = 1,
    lists: bool = True,
    noise: bool = True,
    seed: int = 0,
) -> Path:
    """Speech Commands v0.02 tree: ``<word>/<8hex>_nohash_<n>.wav``, list files by the hash rule,
    ``_background_noise_/`` (two 3 s noise files + README.md), LICENSE and README.md.

    Word ``i`` is a 0.3 s tone burst at ``300 + 150 i`` Hz at a random position; every fifth clip is
    shorter than 1 s (as some real clips are) so loaders must pad.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    val, test = [], []
    for w_i, word in enumerate(words):
        for sid in _speakers(speakers, seed):
            for n in range(reps):
                length = SR if rng.random() > 0.2 else int(SR * 0.7)
                t = np.arange(int(0.3 * SR)) / SR
                burst = 0.4 * np.sin(2 * np.pi * (300 + 150 * w_i) * t) * np.hanning(len(t))
                clip = 0.01 * rng.standard_normal(length)
                start = rng.integers(0, length - len(t))
                clip[start : start + len(t)] += burst
                rel = f"{word}/{sid}_nohash_{n}.wav"
                write_wav(root / rel, clip)
                split = which_set(rel)
                (val if split == "val" else test if split == "test" else []).append(rel)
    if lists:
        (root / "validation_list.txt").write_text("".join(r + "\n" for r in sorted(val)))
        (root / "testing_list.txt").write_text("".join(r + "\n" for r in sorted(test)))
    if noise:
        white = rng.standard_normal(3 * SR) * 0.3
        pink = np.cumsum(rng.standard_normal(3 * SR))
        pink = 0.3 * (pink - pink.mean()) / (np.abs(pink - pink.mean()).max() + 1e-9)
        write_wav(root / "_background_noise_" / "white_noise.wav", white)
        write_wav(root / "_background_noise_" / "pink_noise.wav", pink)
        (root / "_background_noise_" / "README.md").write_text("Fixture noise for tests.\n")
    (root / "LICENSE").write_text("Fixture tree; not Speech Commands data.\n")
    (root / "README.md").write_text("Fake Speech Commands v0.02 layout for tests.\n")
    return root


def _jpeg(img: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img.astype(np.uint8)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _vww_image(person: bool, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A random dark background; ``person`` images add a bright upright ellipse (a 'figure')."""
    img = rng.integers(0, 90, (h, w, 3)).astype(np.float64)
    if person:
        cy, cx = rng.integers(h // 3, 2 * h // 3), rng.integers(w // 4, 3 * w // 4)
        yy, xx = np.mgrid[:h, :w]
        mask = ((yy - cy) / (0.35 * h)) ** 2 + ((xx - cx) / (0.12 * w)) ** 2 <= 1.0
        img[mask] = rng.integers(190, 255, 3)
    return img


def make_vww_folder(
    root: str | Path, *, per_class: int = 12, size: int = 96, nested: bool = True, seed: int = 0
) -> Path:
    """MLPerf Tiny layout ``vw_coco2014_96/{person,non_person}/COCO_{train,val}2014_<12 digits>.jpg``.

    Returns ``root`` (the folder CONTAINING ``vw_coco2014_96``) when ``nested``, else writes the class
    folders directly under ``root``.
    """
    root = Path(root)
    base = root / "vw_coco2014_96" if nested else root
    rng = np.random.default_rng(seed)
    for cls in ("person", "non_person"):
        (base / cls).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            part = "val" if i % 3 == 0 else "train"
            image_id = (1 if cls == "person" else 2) * 100_000 + i
            name = f"COCO_{part}2014_{image_id:012d}.jpg"
            (base / cls / name).write_bytes(_jpeg(_vww_image(cls == "person", size, size, rng)))
    return root


def make_vww_tfrecords(
    root: str | Path, *, train_shards: int = 2, val_shards: int = 1, per_shard: int = 8, seed: int = 0
) -> Path:
    """TFRecord layout of build_visualwakewords_data.py: ``train.record-00000-of-00002`` ... and
    ``val.record-00000-of-00001`` holding full-size JPEGs (here 120x160) with the real feature keys,
    plus ``visualwakewords_labels.txt``."""
    import tensorflow as tf

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)

    def feat_bytes(v):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=v))

    def feat_int(v):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=v))

    def feat_float(v):
        return tf.train.Feature(float_list=tf.train.FloatList(value=v))

    k = 0
    for split, shards in (("train", train_shards), ("val", val_shards)):
        for s in range(shards):
            path = root / f"{split}.record-{s:05d}-of-{shards:05d}"
            with tf.io.TFRecordWriter(str(path)) as writer:
                for _ in range(per_shard):
                    label = k % 2
                    h, w = 120, 160
                    jpg = _jpeg(_vww_image(bool(label), h, w, rng))
                    boxes = [0.3, 0.6, 0.1, 0.9] if label else []
                    ex = tf.train.Example(
                        features=tf.train.Features(
                            feature={
                                "image/height": feat_int([h]),
                                "image/width": feat_int([w]),
                                "image/filename": feat_bytes([f"COCO_{split}2014_{k:012d}.jpg".encode()]),
                                "image/source_id": feat_bytes([str(k).encode()]),
                                "image/key/sha256": feat_bytes([hashlib.sha256(jpg).hexdigest().encode()]),
                                "image/encoded": feat_bytes([jpg]),
                                "image/format": feat_bytes([b"jpeg"]),
                                "image/class/label": feat_int([label]),
                                "image/class/text": feat_bytes([b"person"] if label else []),
                                "image/object/bbox/xmin": feat_float(boxes[:1]),
                                "image/object/bbox/xmax": feat_float(boxes[1:2]),
                                "image/object/bbox/ymin": feat_float(boxes[2:3]),
                                "image/object/bbox/ymax": feat_float(boxes[3:4]),
                                "image/object/class/label": feat_int([label] if label else []),
                                "image/object/area": feat_float([0.24] if label else []),
                            }
                        )
                    )
                    writer.write(ex.SerializeToString())
                    k += 1
    (root / "visualwakewords_labels.txt").write_text("0:background\n1:person\n")
    return root


def make_cifar10(root: str | Path, *, rows_per_batch: int = 20, nested: bool = True, seed: int = 0) -> Path:
    """``cifar-10-batches-py/`` with ``data_batch_1..5``, ``test_batch``, ``batches.meta`` as Python-2
    style pickles (bytes keys, data uint8 (n, 3072) row-major R, G, B planes). Returns the folder to
    pass as data_dir (the parent of cifar-10-batches-py when ``nested``)."""
    root = Path(root)
    base = root / "cifar-10-batches-py" if nested else root
    base.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = [int(v) for v in np.arange(rows_per_batch) % 10]
        img = rng.integers(0, 40, (rows_per_batch, 32, 32, 3)) + np.array(labels)[:, None, None, None] * 20
        data = img.astype(np.uint8).transpose(0, 3, 1, 2).reshape(rows_per_batch, 3072)
        batch = {
            b"batch_label": name.encode(),
            b"labels": labels,
            b"data": data,
            b"filenames": [f"img_{i}.png".encode() for i in range(rows_per_batch)],
        }
        with open(base / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)
    meta = {
        b"label_names": [n.encode() for n in names],
        b"num_cases_per_batch": rows_per_batch,
        b"num_vis": 3072,
    }
    with open(base / "batches.meta", "wb") as f:
        pickle.dump(meta, f, protocol=2)
    (base / "readme.html").write_text("<p>fixture</p>\n")
    return root


def write_idx_gz(path: Path, array: np.ndarray) -> None:
    """Gzipped IDX of unsigned bytes: magic 0x0000080<ndim>, big-endian int32 dims, raw data."""
    array = np.asarray(array, np.uint8)
    header = struct.pack(">i", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}i", *array.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())


def make_fashion_mnist(root: str | Path, *, n_train: int = 200, n_test: int = 50, seed: int = 0) -> Path:
    """The four Fashion-MNIST IDX .gz files with ``n_train`` / ``n_test`` images, classes balanced."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        y = (np.arange(n) % 10).astype(np.uint8)
        x = (rng.integers(0, 50, (n, 28, 28)) + y[:, None, None] * 20).astype(np.uint8)
        write_idx_gz(root / f"{prefix}-images-idx3-ubyte.gz", x)
        write_idx_gz(root / f"{prefix}-labels-idx1-ubyte.gz", y)
    return root
