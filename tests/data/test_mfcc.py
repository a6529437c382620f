"""MFCC front-end vs an independent numpy/scipy computation of the same recipe (float64)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft
import scipy.signal

from reds_tf.data.mfcc import FEATURES, feature_config, mfcc


def _mel(f):
    return 1127.0 * np.log1p(f / 700.0)  # HTK mel scale (2595 log10 form in natural log)


def reference_mfcc(audio: np.ndarray, window: int, stride: int, nfft: int = 1024) -> np.ndarray:
    """The recipe written from its definition: periodic Hann, |rfft|^2, triangular mel filters on the
    mel axis (DC bin zeroed), log(x + 1e-6), DCT-II / sqrt(2 * n_mel), first 10 coefficients."""
    n_frames = 1 + (len(audio) - window) // stride
    frames = np.stack([audio[i * stride : i * stride + window] for i in range(n_frames)]).astype(np.float64)
    win = scipy.signal.get_window("hann", window, fftbins=True)
    power = np.abs(np.fft.rfft(frames * win, n=nfft)) ** 2
    freqs = np.linspace(0.0, 8000.0, nfft // 2 + 1)
    edges = np.linspace(_mel(20.0), _mel(4000.0), 40 + 2)
    m = _mel(freqs)[:, None]
    lo, mid, hi = edges[:-2], edges[1:-1], edges[2:]
    fb = np.maximum(0.0, np.minimum((m - lo) / (mid - lo), (hi - m) / (hi - mid)))
    fb[0, :] = 0.0  # the DC bin contributes to no band
    log_mel = np.log(power @ fb + 1e-6)
    return (scipy.fft.dct(log_mel, type=2, axis=-1) / np.sqrt(2 * 40))[:, :10]


@pytest.fixture(scope="module")
def audio():
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000.0
    # a chirp plus noise: energy in every mel band, like speech
    x = 0.5 * scipy.signal.chirp(t, 100, 1.0, 3800) + 0.05 * rng.standard_normal(16000)
    return x.astype(np.float32)


@pytest.mark.parametrize(
    "name,window,stride,frames", [("mfcc_49x10", 640, 320, 49), ("mfcc_25x10", 640, 640, 25)]
)
def test_mfcc_matches_independent_computation(audio, name, window, stride, frames):
    cfg = feature_config(name)
    assert cfg.shape == (frames, 10, 1)
    got = mfcc(audio, cfg).numpy()
    want = reference_mfcc(audio.astype(np.float64), window, stride)
    assert got.shape == want.shape == (frames, 10)
    # float32 STFT vs float64: measured max error 1.5e-5 on coefficients up to 17.5; tolerance 1e-4 x max.
    scale = np.abs(want).max()
    np.testing.assert_allclose(got, want, atol=1e-4 * scale, rtol=0)


def test_mfcc_batched_equals_single(audio):
    batch = np.stack([audio, 0.3 * audio[::-1].copy()])
    got = mfcc(batch).numpy()
    np.testing.assert_allclose(got[1], mfcc(batch[1]).numpy(), rtol=1e-5, atol=1e-4)
    assert got.shape == (2, 49, 10)


def test_mfcc_of_silence_is_finite():
    out = mfcc(np.zeros(16000, np.float32)).numpy()
    assert np.isfinite(out).all()
    # all-zero input: every log-mel is log(1e-6), so c0 = 2 * 40 * log(1e-6) / sqrt(80) and the rest are 0
    np.testing.assert_allclose(out[:, 0], np.log(1e-6) * np.sqrt(80), rtol=1e-5)
    np.testing.assert_allclose(out[:, 1:], 0.0, atol=1e-3)


def test_unknown_feature_name_is_rejected():
    with pytest.raises(ValueError, match="feature='mfcc_13x10'"):
        feature_config("mfcc_13x10")
    assert set(FEATURES) == {"mfcc_49x10", "mfcc_25x10"}
