"""MFCC front-end of the Hello Edge / REDS keyword-spotting models, in TensorFlow graph ops.

Recipe (reds-method.md): 1 s of 16 kHz audio in [-1, 1]; Hann window of 640 samples (40 ms), stride
320 (20 ms), FFT length 1024 (the next power of two, as TF's AudioSpectrogram); power spectrum
``|X|^2``; 40 triangular mel filters between 20 and 4000 Hz; ``log(mel + 1e-6)``; DCT-II scaled as
``tf.signal.mfccs_from_log_mel_spectrograms``; the first 10 coefficients. 1 + (16000 - 640) // 320 = 49
frames -> 49 x 10. The DNN uses the 40 ms stride variant: 1 + (16000 - 640) // 640 = 25 frames -> 25 x 10.

The functions accept a batch ``[..., samples]`` so the training pipeline computes features for a whole
batch in one call (see speech_commands.py for the measured difference).
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

import numpy as np
from reds_tf._keras import tf

SAMPLE_RATE = 16_000
CLIP_SAMPLES = 16_000


@dataclass(frozen=True)
class MfccConfig:
    """One feature recipe; ``frames`` and ``shape`` follow from it."""

    window: int = 640
    stride: int = 320
    fft_length: int = 1024
    num_mel_bins: int = 40
    lower_hz: float = 20.0
    upper_hz: float = 4000.0
    num_coefficients: int = 10
    log_offset: float = 1e-6
    sample_rate: int = SAMPLE_RATE
    clip_samples: int = CLIP_SAMPLES

    @property
    def frames(self) -> int:
        return 1 + (self.clip_samples - self.window) // self.stride

    @property
    def shape(self) -> tuple[int, int, int]:
        """Model input shape (frames, coefficients, 1)."""
        return (self.frames, self.num_coefficients, 1)

    def as_dict(self) -> dict:
        return {**asdict(self), "frames": self.frames}


FEATURES = {
    "mfcc_49x10": MfccConfig(),
    "mfcc_25x10": MfccConfig(stride=640),
}


def feature_config(name: str) -> MfccConfig:
    """The :class:`MfccConfig` registered under ``name`` (``mfcc_49x10`` or ``mfcc_25x10``)."""
    if name not in FEATURES:
        raise ValueError(
            f"Unknown audio feature. Received: feature={name!r}. Fix: use one of {sorted(FEATURES)}."
        )
    return FEATURES[name]


def power_spectrogram(audio: tf.Tensor, cfg: MfccConfig = FEATURES["mfcc_49x10"]) -> tf.Tensor:
    """``|STFT|^2`` of ``audio [..., samples]`` -> ``[..., frames, fft_length // 2 + 1]``."""
    stft = tf.signal.stft(
        tf.cast(audio, tf.float32),
        frame_length=cfg.window,
        frame_step=cfg.stride,
        fft_length=cfg.fft_length,
        window_fn=tf.signal.hann_window,
        pad_end=False,
    )
    return tf.math.square(tf.abs(stft))


@functools.lru_cache(maxsize=8)
def mel_matrix(cfg: MfccConfig) -> np.ndarray:
    """``[fft_length // 2 + 1, num_mel_bins]`` filterbank, computed once per config (eagerly: building
    it inside every traced tf.data function made each ``load`` about 0.4 s slower per split)."""
    with tf.init_scope():
        return tf.signal.linear_to_mel_weight_matrix(
            num_mel_bins=cfg.num_mel_bins,
            num_spectrogram_bins=cfg.fft_length // 2 + 1,
            sample_rate=cfg.sample_rate,
            lower_edge_hertz=cfg.lower_hz,
            upper_edge_hertz=cfg.upper_hz,
        ).numpy()


@tf.autograph.experimental.do_not_convert
def mfcc(audio: tf.Tensor, cfg: MfccConfig = FEATURES["mfcc_49x10"]) -> tf.Tensor:
    """MFCCs of ``audio [..., samples]`` -> ``[..., frames, num_coefficients]`` float32."""
    power = power_spectrogram(audio, cfg)
    mel = tf.tensordot(power, tf.constant(mel_matrix(cfg)), 1)
    log_mel = tf.math.log(mel + cfg.log_offset)
    return tf.signal.mfccs_from_log_mel_spectrograms(log_mel)[..., : cfg.num_coefficients]
