"""SYNTHETIC keyword clips in the Speech Commands v0.02 layout, from espeak-ng (and flite when present).

    python -m reds_tf.data.synth_kws OUT_DIR --per-word 100 [--unknown-per-word 25] [--seed 0]

For demos and tests of the KWS pipeline only: a model trained on these voices scores far lower on real
speech, so results on this set must NEVER be reported as Speech Commands accuracy (the README.md
written into OUT_DIR says so, and loaders record the path).

Per clip: a random "speaker" (engine, voice, accent, pitch, speed) says the word; the audio is
resampled to 16 kHz, trimmed of silence, scaled to a random peak in [0.25, 0.8], placed at a random
offset in 1 s and mixed with white / pink / brown noise at 10-30 dB SNR. Files are
``<word>/<8 hex speaker id>_nohash_<n>.wav`` (16-bit mono PCM), so the standard hash split keeps a
speaker in one split; ``validation_list.txt`` / ``testing_list.txt`` are written by that rule, and
``_background_noise_/`` holds generated noise (for augmentation and ``_silence_``).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np

from reds_tf.data.speech_commands_index import BACKGROUND_DIR, KEYWORDS, SYNTHETIC_MARKER, which_set
from reds_tf.errors import RedsError
from reds_tf.runstore import atomic_write_bytes, atomic_write_text

SR = 16_000
UNKNOWN_WORDS = ("zero", "one", "two", "three", "marvin", "bed", "cat", "house")
ESPEAK_ACCENTS = (
    "en-us",
    "en-gb",
    "en-gb-scotland",
    "en-gb-x-rp",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
    "en-029",
)
FLITE_VOICES = ("kal16", "awb", "rms", "slt", "kal")


@dataclass(frozen=True)
class Speaker:
    """One synthetic voice; its hash is the 8-hex speaker id of the file names."""

    engine: str
    voice: str
    pitch: int
    speed: float

    @property
    def id(self) -> str:
        return hashlib.sha1(f"{self.engine}|{self.voice}|{self.pitch}|{self.speed}".encode()).hexdigest()[:8]


def espeak_variants() -> list[str]:
    """espeak-ng's voice variants (``voices/!v``), leaving out names with spaces."""
    out = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=True).stdout
    m = re.search(r"Data at:\s*(\S+)", out)
    folder = Path(m.group(1)) / "voices" / "!v" if m else None
    names = (
        sorted(p.name for p in folder.iterdir() if " " not in p.name) if folder and folder.is_dir() else []
    )
    return names or ["m1", "m3", "f1", "f3"]


def make_speakers(n: int, rng: np.random.Generator, engines: tuple[str, ...]) -> list[Speaker]:
    """``n`` distinct random voices over the engines; the hash split puts ~10 % each in val and test.

    Voices are drawn until those quotas are met (at least one each), so even a tiny set has all
    three splits, as a real speaker population would.
    """
    variants = espeak_variants() if "espeak" in engines else []
    quota = {"val": max(1, round(0.1 * n)), "test": max(1, round(0.1 * n))}
    quota["train"] = max(1, n - quota["val"] - quota["test"])
    got: dict[str, list[Speaker]] = {"train": [], "val": [], "test": []}
    seen: set[str] = set()
    i = 0
    while any(len(got[k]) < quota[k] for k in got):
        engine = engines[i % len(engines)]
        i += 1
        if engine == "espeak":
            voice = f"{rng.choice(ESPEAK_ACCENTS)}+{rng.choice(variants)}"
            sp = Speaker("espeak", voice, int(rng.integers(20, 81)), float(rng.integers(130, 200)))
        else:
            sp = Speaker(
                "flite",
                str(rng.choice(FLITE_VOICES)),
                int(rng.integers(80, 241)),
                float(rng.uniform(0.8, 1.3)),
            )
        split = which_set(f"{sp.id}_nohash_0.wav")
        if sp.id not in seen and len(got[split]) < quota[split]:
            seen.add(sp.id)
            got[split].append(sp)
    return got["train"] + got["val"] + got["test"]


def parse_wav_bytes(data: bytes) -> tuple[np.ndarray, int]:
    """16-bit PCM wav bytes -> (float32 mono, rate). Tolerates espeak's streaming header (size 0x7ffff000)."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise RedsError(f"Synthesizer output is not a wav file (first bytes {data[:12]!r}).")
    pos, rate, channels = 12, SR, 1
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        if cid == b"fmt ":
            channels = int.from_bytes(data[pos + 10 : pos + 12], "little")
            rate = int.from_bytes(data[pos + 12 : pos + 16], "little")
        if cid == b"data":
            body = data[pos + 8 : pos + 8 + min(size, len(data))]
            pcm = np.frombuffer(body[: len(body) // 2 * 2], "<i2").astype(np.float32) / 32768.0
            return pcm.reshape(-1, channels).mean(axis=1), rate
        pos += 8 + size + (size & 1)
    raise RedsError("Synthesizer wav output has no data chunk.")


def synthesize(word: str, sp: Speaker, tmpdir: str) -> np.ndarray:
    """The word spoken by ``sp`` as float32 audio at 16 kHz."""
    if sp.engine == "espeak":
        cmd = ["espeak-ng", "-v", sp.voice, "-p", str(sp.pitch), "-s", str(int(sp.speed)), "--stdout", word]
        data = subprocess.run(cmd, capture_output=True, check=True).stdout
    else:
        out = os.path.join(tmpdir, f"{os.getpid()}_{word}.wav")
        cmd = [
            "flite",
            "-voice",
            sp.voice,
            "-t",
            word,
            "-o",
            out,
            "--setf",
            f"duration_stretch={sp.speed:.3f}",
        ]
        subprocess.run([*cmd, "--setf", f"int_f0_target_mean={sp.pitch}"], capture_output=True, check=True)
        data = Path(out).read_bytes()
    audio, rate = parse_wav_bytes(data)
    if rate != SR:
        from scipy.signal import resample_poly  # polyphase: no aliasing from 22.05 kHz espeak output

        g = gcd(SR, rate)
        audio = resample_poly(audio, SR // g, rate // g).astype(np.float32)
    return audio


def colored_noise(n: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS white, pink (1/f power) or brown (1/f^2) noise of ``n`` samples."""
    white = rng.standard_normal(n)
    if kind == "white":
        x = white
    else:
        spec = np.fft.rfft(white)
        f = np.maximum(np.fft.rfftfreq(n), 1.0 / n)
        x = np.fft.irfft(spec / (np.sqrt(f) if kind == "pink" else f), n)
    return (x / (np.sqrt(np.mean(x**2)) + 1e-12)).astype(np.float32)


def place_in_clip(word_audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Trim silence, random peak level, random offset in 1 s, noise at 10-30 dB SNR."""
    thr = 0.03 * (np.abs(word_audio).max() + 1e-9)
    loud = np.flatnonzero(np.abs(word_audio) > thr)
    w = word_audio[max(0, loud[0] - 160) : loud[-1] + 160] if len(loud) else word_audio
    w = w[:SR]
    w = w * (rng.uniform(0.25, 0.8) / (np.abs(w).max() + 1e-9))
    clip = np.zeros(SR, np.float32)
    start = int(rng.integers(0, SR - len(w) + 1))
    clip[start : start + len(w)] = w
    snr_db = rng.uniform(10.0, 30.0)
    rms = np.sqrt(np.mean(w**2)) + 1e-9
    noise = colored_noise(SR, str(rng.choice(["white", "pink", "brown"])), rng)
    return np.clip(clip + noise * rms / 10 ** (snr_db / 20), -1.0, 1.0)


def wav_bytes(audio: np.ndarray, rate: int = SR) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.clip(np.round(audio * 32767), -32768, 32767).astype("<i2").tobytes())
    return buf.getvalue()


def _write(path: Path, data: bytes) -> None:
    # no fsync per clip: a thousand fsyncs would dominate the run time
    atomic_write_bytes(path, data, fsync=False)


def _job(task: tuple[str, Speaker, int, int, str, str]) -> str:
    word, sp, n, seed, out_dir, tmpdir = task
    rng = np.random.default_rng([seed, int(sp.id, 16), n, sum(map(ord, word))])
    clip = place_in_clip(synthesize(word, sp, tmpdir), rng)
    rel = f"{word}/{sp.id}_nohash_{n}.wav"
    _write(Path(out_dir) / rel, wav_bytes(clip))
    return rel


def plan_tasks(
    per_word: int, unknown_per_word: int, seed: int, engines: tuple[str, ...], speakers: int | None = None
) -> list[tuple[str, Speaker, int]]:
    """(word, speaker, repetition) for every clip; speakers say each word a few times, like real ones."""
    rng = np.random.default_rng(seed)
    pool = make_speakers(speakers or max(20, per_word), rng, engines)
    tasks = []
    for word, count in [(w, per_word) for w in KEYWORDS] + [(w, unknown_per_word) for w in UNKNOWN_WORDS]:
        reps: dict[str, int] = {}
        for _ in range(count):
            sp = pool[int(rng.integers(len(pool)))]
            tasks.append((word, sp, reps.get(sp.id, 0)))
            reps[sp.id] = reps.get(sp.id, 0) + 1
    return tasks


README = """# SYNTHETIC keyword-spotting data -- NOT Google Speech Commands

Generated by `python -m reds_tf.data.synth_kws {args}` ({n} clips, {secs:.1f} s).
Engines: {engines}. Keywords: {keywords}. Unknown words: {unknown}.

The layout copies Speech Commands v0.02 (`<word>/<speaker>_nohash_<n>.wav`, 16 kHz mono 16-bit,
`validation_list.txt` / `testing_list.txt` by the sha1 hash rule, `_background_noise_/`) so the real
loader and pipeline run on it. A "speaker" is one synthetic voice (engine, voice, pitch, speed).

**Never report accuracy on this set as Speech Commands accuracy.** Models trained on synthetic voices
score far lower on other engines and on real human speech. Use it for demos and tests only.
The background noise files are generated (white, pink, brown noise and a mains hum).
"""


def write_background_noise(out: Path, seed: int, seconds: int = 30) -> list[str]:
    rng = np.random.default_rng([seed, 99])
    (out / BACKGROUND_DIR).mkdir(parents=True, exist_ok=True)
    n = seconds * SR
    t = np.arange(n) / SR
    hum = sum(np.sin(2 * np.pi * 50 * k * t) / k for k in (1, 2, 3, 5)) + 0.2 * colored_noise(n, "white", rng)
    noises = {
        "white_noise.wav": colored_noise(n, "white", rng),
        "pink_noise.wav": colored_noise(n, "pink", rng),
        "brown_noise.wav": colored_noise(n, "brown", rng),
        "mains_hum.wav": hum / np.abs(hum).max(),
    }
    for name, x in noises.items():
        _write(out / BACKGROUND_DIR / name, wav_bytes(0.3 * x / (np.abs(x).max() + 1e-9)))
    atomic_write_text(out / BACKGROUND_DIR / "README.md", "Generated noise (synthetic), 16 kHz mono.\n")
    return sorted(noises)


def generate(
    out_dir: str | os.PathLike,
    per_word: int = 100,
    *,
    unknown_per_word: int | None = None,
    seed: int = 0,
    workers: int | None = None,
    engines: tuple[str, ...] | None = None,
) -> Path:
    """Write a synthetic Speech Commands-style tree to ``out_dir`` and return it."""
    t0 = time.time()
    out = Path(out_dir)
    if engines is None:
        engines = tuple(e for e, exe in (("espeak", "espeak-ng"), ("flite", "flite")) if shutil.which(exe))
    exes = {"espeak": "espeak-ng", "flite": "flite"}
    unknown = [e for e in engines if e not in exes]
    if unknown:
        raise ValueError(f"Unknown speech engine. Received: engines={engines}. Fix: use espeak and/or flite.")
    missing = [e for e in engines if not shutil.which(exes[e])]
    if not engines or missing:
        raise RedsError(
            f"Speech synthesizer not found. Received: engines={engines or '()'} "
            f"(missing {missing or 'all'}). Fix: `sudo apt-get install espeak-ng flite`."
        )
    unknown_per_word = max(1, per_word // 4) if unknown_per_word is None else unknown_per_word
    tasks = plan_tasks(per_word, unknown_per_word, seed, engines)
    # Import scipy.signal (about 2 s) once here, so the forked workers inherit it instead of each paying.
    import scipy.signal  # noqa: F401

    for word in {t[0] for t in tasks}:
        (out / word).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmpdir:
        jobs = [(w, sp, n, seed, str(out), tmpdir) for w, sp, n in tasks]
        with multiprocessing.get_context("fork").Pool(workers or os.cpu_count() or 1) as pool:
            rels = pool.map(_job, jobs, chunksize=8)
    write_background_noise(out, seed)
    split = {r: which_set(r) for r in rels}
    atomic_write_text(
        out / "validation_list.txt", "".join(f"{r}\n" for r in sorted(rels) if split[r] == "val")
    )
    atomic_write_text(out / "testing_list.txt", "".join(f"{r}\n" for r in sorted(rels) if split[r] == "test"))
    args = f"{out_dir} --per-word {per_word} --unknown-per-word {unknown_per_word} --seed {seed}"
    text = README.format(
        args=args,
        n=len(rels),
        secs=time.time() - t0,
        engines=", ".join(engines),
        keywords=" ".join(KEYWORDS),
        unknown=" ".join(UNKNOWN_WORDS),
    )
    atomic_write_bytes(out / "README.md", text.encode())
    atomic_write_text(out / SYNTHETIC_MARKER, f"reds_tf.data.synth_kws {args}: not Google Speech Commands\n")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m reds_tf.data.synth_kws", description=__doc__.split("\n")[0])
    p.add_argument("out_dir")
    p.add_argument("--per-word", type=int, default=100, help="clips per keyword (default 100)")
    p.add_argument("--unknown-per-word", type=int, default=None, help="clips per unknown word (per-word/4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.add_argument("--engines", default=None, help="comma list of espeak,flite (default: those installed)")
    a = p.parse_args(argv)
    t0 = time.time()
    out = generate(
        a.out_dir,
        a.per_word,
        unknown_per_word=a.unknown_per_word,
        seed=a.seed,
        workers=a.workers,
        engines=tuple(a.engines.split(",")) if a.engines else None,
    )
    n = sum(1 for _ in out.glob("*/*_nohash_*.wav"))
    print(f"wrote {n} SYNTHETIC clips to {out} in {time.time() - t0:.1f} s (see {out / 'README.md'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
