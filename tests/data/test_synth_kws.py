"""Synthetic keyword generator: writes the Speech Commands layout that the real loader accepts."""

from __future__ import annotations

import re
import shutil
import wave

import numpy as np
import pytest

from reds_tf.data import check_layout
from reds_tf.data.speech_commands import read_wav
from reds_tf.data.speech_commands_index import KEYWORDS, build_index, which_set
from reds_tf.data.synth_kws import UNKNOWN_WORDS, generate, main, parse_wav_bytes, wav_bytes
from reds_tf.errors import RedsError

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    assert main([str(out), "--per-word", "2", "--unknown-per-word", "1", "--workers", "2"]) == 0
    return out


def test_layout_names_and_format(synth):
    assert check_layout("speech_commands", synth) == synth
    wavs = sorted(synth.glob("*/*.wav"))
    clips = [p for p in wavs if p.parent.name != "_background_noise_"]
    assert len(clips) == 10 * 2 + len(UNKNOWN_WORDS)
    for p in clips:
        assert re.fullmatch(r"[0-9a-f]{8}_nohash_\d+\.wav", p.name), p.name
        with wave.open(str(p)) as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()) == (
                16000,
                1,
                2,
                16000,
            )
        x = read_wav(p)
        # a word is present: the loudest 100 ms is far above the quietest 100 ms (noise floor)
        e = np.sort((x.reshape(10, 1600) ** 2).mean(axis=1))
        assert e[-1] > 10 * e[0], p
    assert len(list((synth / "_background_noise_").glob("*.wav"))) == 4


def test_lists_follow_the_hash_rule_and_readme_says_synthetic(synth):
    val = (synth / "validation_list.txt").read_text().split()
    test = (synth / "testing_list.txt").read_text().split()
    assert all(which_set(r) == "val" for r in val) and all(which_set(r) == "test" for r in test)
    index = build_index(synth)
    assert index.split_rule.startswith("validation_list.txt")
    assert index.synthetic and "SYNTHETIC" in index.split_rule and "official" not in index.split_rule
    assert {f.split("/")[0] for f in index.files["train"] if f} <= set(KEYWORDS) | set(UNKNOWN_WORDS)
    readme = (synth / "README.md").read_text()
    assert "SYNTHETIC" in readme and "Never report accuracy on this set as Speech Commands accuracy" in readme


def test_same_seed_same_audio(tmp_path):
    a = generate(tmp_path / "a", 1, unknown_per_word=0, seed=4, workers=1, engines=("espeak",))
    b = generate(tmp_path / "b", 1, unknown_per_word=0, seed=4, workers=1, engines=("espeak",))
    names = sorted(p.relative_to(a) for p in a.glob("yes/*.wav"))
    assert names == sorted(p.relative_to(b) for p in b.glob("yes/*.wav"))
    np.testing.assert_array_equal(read_wav(a / names[0]), read_wav(b / names[0]))


def test_wav_round_trip_and_bad_input():
    x = np.linspace(-0.5, 0.5, 100, dtype=np.float32)
    y, rate = parse_wav_bytes(wav_bytes(x))
    assert rate == 16000 and np.abs(y - x).max() < 1e-4
    with pytest.raises(RedsError, match="not a wav file"):
        parse_wav_bytes(b"hello world, no riff here")
    with pytest.raises(ValueError, match=r"engines=\('festival',\)"):
        generate("/tmp/never", 1, engines=("festival",))
