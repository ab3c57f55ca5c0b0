"""Images and audio in and out of requests: base64, data URIs, uploads, PNG and WAV.

Audio is decoded without ffmpeg: soundfile when installed (WAV, FLAC, OGG, MP3), else the
standard library's `wave` (PCM WAV); resampled with scipy when present, else numpy.
"""

from __future__ import annotations

import base64
import binascii
import io
import wave

import numpy as np

from llm_runtime.errors import InvalidRequest

Payload = str | bytes


def payload_bytes(value: Payload, what: str) -> bytes:
    """Raw bytes of an upload, a base64 string or a `data:...;base64,` URI."""
    if isinstance(value, bytes):
        return value
    text = value.strip()
    if text.startswith("data:"):
        text = text.partition(",")[2]
    try:
        return base64.b64decode(text, validate=False)
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequest(f"{what}: not valid base64 or a data URI ({exc}).") from exc


def decode_image(value: Payload, what: str = "image"):
    """A PIL RGB image from an upload, base64 or a data URI."""
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(payload_bytes(value, what)))
        image.load()
    except (UnidentifiedImageError, OSError) as exc:
        raise InvalidRequest(f"{what}: not an image PIL can read ({exc}).") from exc
    return image.convert("RGB")


def image_to_base64(image, fmt: str = "PNG", quality: int = 85) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def image_data_uri(image, fmt: str = "PNG") -> str:
    return f"data:image/{fmt.lower()};base64,{image_to_base64(image, fmt)}"


def decode_audio(value: Payload, sampling_rate: int, what: str = "audio") -> np.ndarray:
    """Mono float32 samples at sampling_rate from an uploaded audio file."""
    data = payload_bytes(value, what)
    samples, rate = _read_audio(data, what)
    if samples.ndim > 1:
        samples = samples.mean(axis=1)
    return resample(samples.astype(np.float32), rate, sampling_rate)


def _read_audio(data: bytes, what: str) -> tuple[np.ndarray, int]:
    try:
        import soundfile
    except ImportError:
        return _read_wav(data, what)
    try:
        samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=False)
    except Exception as exc:  # soundfile raises its own LibsndfileError and RuntimeError
        raise InvalidRequest(f"{what}: cannot decode the audio ({exc}).") from exc
    return samples, int(rate)


def _read_wav(data: bytes, what: str) -> tuple[np.ndarray, int]:
    try:
        with wave.open(io.BytesIO(data)) as wav:
            width, channels, rate = wav.getsampwidth(), wav.getnchannels(), wav.getframerate()
            frames = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as exc:
        raise InvalidRequest(
            f"{what}: only PCM WAV can be read here ({exc}); install soundfile for FLAC/OGG/MP3."
        ) from exc
    samples = _pcm_to_float(frames, width)
    return samples.reshape(-1, channels), rate


def _pcm_to_float(frames: bytes, width: int) -> np.ndarray:
    if width == 1:
        return (np.frombuffer(frames, np.uint8).astype(np.float32) - 128) / 128
    if width == 3:
        raw = np.frombuffer(frames, np.uint8).reshape(-1, 3)
        ints = raw[:, 0].astype(np.int32) | raw[:, 1].astype(np.int32) << 8
        ints |= raw[:, 2].astype(np.int8).astype(np.int32) << 16
        return ints.astype(np.float32) / 2**23
    dtype = {2: np.int16, 4: np.int32}[width]
    return np.frombuffer(frames, dtype).astype(np.float32) / float(np.iinfo(dtype).max)


def resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    if rate == target or samples.size == 0:
        return samples
    try:
        from math import gcd

        from scipy.signal import resample_poly
    except ImportError:
        length = round(samples.size * target / rate)
        positions = np.linspace(0, samples.size - 1, length)
        return np.interp(positions, np.arange(samples.size), samples).astype(np.float32)
    divisor = gcd(rate, target)
    return resample_poly(samples, target // divisor, rate // divisor).astype(np.float32)


def wav_bytes(samples: np.ndarray, sampling_rate: int) -> bytes:
    """16-bit PCM mono WAV of float samples in [-1, 1]."""
    pcm = (np.clip(np.asarray(samples, np.float32).reshape(-1), -1, 1) * 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(int(sampling_rate))
        wav.writeframes(pcm.tobytes())
    return buffer.getvalue()
