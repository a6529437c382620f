"""Which Speech Commands v0.02 file goes into which split with which of the 12 labels (pure Python).

* Split: ``validation_list.txt`` / ``testing_list.txt`` when both exist (the official split); otherwise
  TF's ``input_data.which_set`` rule, a sha1 hash of the file name up to ``_nohash_``, so one speaker
  never spans two splits.
* Labels (TFDS / MLPerf Tiny order): down go left no off on right stop up yes = 0..9, ``_silence_`` =
  10, ``_unknown_`` = 11 (every other word folder).
* Shares (as ``input_data.py``): per split, ``ceil(n_keywords * silence_percentage / 100)`` silence
  clips and as many randomly chosen (seeded) unknown-word clips for ``unknown_percentage``.
  Silence entries have the empty path ``""``; the loader fills them with background noise.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from reds_tf.data.splits import balanced_limit

KEYWORDS = ("down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes")
SILENCE = "_silence_"
UNKNOWN = "_unknown_"
CLASS_NAMES = [*KEYWORDS, SILENCE, UNKNOWN]
SILENCE_LABEL = CLASS_NAMES.index(SILENCE)
UNKNOWN_LABEL = CLASS_NAMES.index(UNKNOWN)
BACKGROUND_DIR = "_background_noise_"
SPLITS = ("train", "val", "test")
_MAX_NUM_WAVS_PER_CLASS = 2**27 - 1  # ~134M, the constant of TF's input_data.py


def which_set(filename: str, validation_percentage: float = 10.0, testing_percentage: float = 10.0) -> str:
    """``"val"``, ``"test"`` or ``"train"`` for ``filename`` by the Speech Commands hash rule."""
    base = re.sub(r"_nohash_.*$", "", os.path.basename(filename))
    h = int(hashlib.sha1(base.encode("utf-8")).hexdigest(), 16)
    p = (h % (_MAX_NUM_WAVS_PER_CLASS + 1)) * (100.0 / _MAX_NUM_WAVS_PER_CLASS)
    if p < validation_percentage:
        return "val"
    if p < validation_percentage + testing_percentage:
        return "test"
    return "train"


# A tree written by reds_tf.data.synth_kws carries this file, so every result made from it says so.
SYNTHETIC_MARKER = "SYNTHETIC"


@dataclass
class SpeechIndex:
    """Per split: relative wav paths (``""`` = silence) and int labels, plus the noise files."""

    files: dict[str, list[str]] = field(default_factory=dict)
    labels: dict[str, np.ndarray] = field(default_factory=dict)
    noise_files: list[str] = field(default_factory=list)
    split_rule: str = ""
    synthetic: bool = False


def _read_list(path: Path) -> set[str]:
    return {ln.strip() for ln in path.read_text().splitlines() if ln.strip()}


def word_files(root: Path) -> dict[str, list[str]]:
    """Every word folder (not ``_background_noise_``) -> its sorted relative ``word/file.wav`` paths."""
    out = {}
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("_")):
        wavs = sorted(f"{d.name}/{f}" for f in os.listdir(d) if f.endswith(".wav"))
        if wavs:
            out[d.name] = wavs
    return out


def build_index(
    root: str | os.PathLike,
    *,
    validation_percentage: float = 10.0,
    testing_percentage: float = 10.0,
    silence_percentage: float = 10.0,
    unknown_percentage: float = 10.0,
    seed: int = 0,
    limit: int | None = None,
) -> SpeechIndex:
    """Assign every clip of the tree at ``root`` to a split and a label (see the module docstring)."""
    root = Path(root)
    val_list, test_list = root / "validation_list.txt", root / "testing_list.txt"
    use_lists = val_list.is_file() and test_list.is_file()
    synthetic = (root / SYNTHETIC_MARKER).is_file()
    if use_lists:
        lists = {"val": _read_list(val_list), "test": _read_list(test_list)}
        split_of = lambda rel: "val" if rel in lists["val"] else "test" if rel in lists["test"] else "train"
        rule = (
            "validation_list.txt / testing_list.txt of a SYNTHETIC tree (sha1 hash rule), not Speech Commands"
            if synthetic
            else "validation_list.txt / testing_list.txt (official v0.02 split)"
        )
    else:
        split_of = lambda rel: which_set(rel, validation_percentage, testing_percentage)
        rule = (
            f"sha1 hash rule of TF input_data.which_set ({validation_percentage:g} % val, "
            f"{testing_percentage:g} % test): list files absent"
        )
    known: dict[str, list[tuple[str, int]]] = {s: [] for s in SPLITS}
    unknown: dict[str, list[str]] = {s: [] for s in SPLITS}
    for word, rels in word_files(root).items():
        for rel in rels:
            split = split_of(rel)
            if word in KEYWORDS:
                known[split].append((rel, KEYWORDS.index(word)))
            else:
                unknown[split].append(rel)
    index = SpeechIndex(split_rule=rule, synthetic=synthetic)
    noise_dir = root / BACKGROUND_DIR
    if noise_dir.is_dir():
        index.noise_files = sorted(
            f"{BACKGROUND_DIR}/{f}" for f in os.listdir(noise_dir) if f.endswith(".wav")
        )
    for i, split in enumerate(SPLITS):
        rng = np.random.default_rng([seed, i])
        n_known = len(known[split])
        n_sil = math.ceil(n_known * silence_percentage / 100.0)
        n_unk = min(len(unknown[split]), math.ceil(n_known * unknown_percentage / 100.0))
        unk = [unknown[split][j] for j in sorted(rng.permutation(len(unknown[split]))[:n_unk])]
        files = [r for r, _ in known[split]] + unk + [""] * n_sil
        labels = np.array(
            [lab for _, lab in known[split]] + [UNKNOWN_LABEL] * n_unk + [SILENCE_LABEL] * n_sil, np.int64
        )
        keep = balanced_limit(np.arange(len(files)), labels, limit, seed + 101 * i)
        index.files[split] = [files[j] for j in keep]
        index.labels[split] = labels[keep]
    return index
