"""A small ctypes wrapper around the libespeak-ng shipped by the ``espeakng-loader`` wheel.

No system package and no ``espeak`` binary: the wheel carries the shared library and its voice
data. espeak-ng keeps synthesis state in C statics (pitch-flutter phase, gain control, noise
generators) that no API call resets, so the same call gives different samples depending on what
was spoken before. :func:`synthesize` therefore loads a fresh copy of the library for every
utterance (load + initialise + unload costs about 2 ms), which makes its output a function of its
arguments alone: the same in any process, in any order.
"""

from __future__ import annotations

import _ctypes
import ctypes
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["EspeakEngine", "VoiceVariant", "espeak_data_path", "has_language", "list_variants", "synthesize"]

_INSTALL_HINT = (
    "minivox synthesis needs the espeakng-loader wheel (libespeak-ng + voice data): "
    "pip install -e '.[demo]'"
)

# espeak_lib.h constants
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_EE_OK = 0
_PARAM_RATE, _PARAM_VOLUME, _PARAM_PITCH, _PARAM_RANGE = 1, 2, 3, 4

_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


def _loader():  # -> module espeakng_loader
    try:
        import espeakng_loader
    except ImportError as err:
        raise ImportError(_INSTALL_HINT) from err
    return espeakng_loader


def espeak_data_path() -> Path:
    """Directory ``espeak-ng-data`` inside the installed espeakng-loader wheel."""
    return Path(_loader().get_data_path())


@dataclass(frozen=True)
class VoiceVariant:
    """A voice variant file from ``espeak-ng-data/voices/!v`` (e.g. ``m3``) and its declared gender."""

    name: str
    gender: str  # "m" or "f"


def list_variants() -> list[VoiceVariant]:
    """Variants that declare a gender (``gender male|female``), sorted by name."""
    variants = []
    for path in sorted((espeak_data_path() / "voices" / "!v").iterdir()):
        if not path.is_file() or " " in path.name:
            continue
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            words = line.split()
            if len(words) >= 2 and words[0] == "gender":
                gender = words[1].lower()
                if gender in ("male", "female"):
                    variants.append(VoiceVariant(path.name, gender[0]))
                break
    return variants


def has_language(language: str) -> bool:
    """Whether the wheel's data holds a language voice file named ``language`` (e.g. ``de``)."""
    return any(p.is_file() for p in (espeak_data_path() / "lang").rglob(language))


class EspeakEngine:
    """One loaded, initialised copy of libespeak-ng (synchronous mode); use as a context manager.

    Closing it terminates espeak-ng and unloads the library, so the next engine starts from
    fresh C state. Only one engine may be open per process (they would share that state).
    """

    _open_in_process = False

    def __init__(self) -> None:
        if EspeakEngine._open_in_process:
            raise RuntimeError("an EspeakEngine is already open in this process; close it first")
        loader = _loader()
        lib_path = loader.get_library_path()
        try:
            lib = ctypes.CDLL(lib_path)
        except OSError as err:
            raise OSError(f"cannot load libespeak-ng from {lib_path}: {err}; {_INSTALL_HINT}") from err
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.restype = ctypes.c_int
        lib.espeak_Terminate.restype = ctypes.c_int
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_ng_SetRandSeed.restype = None
        data_path = loader.get_data_path().encode()
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, _INITIALIZE_DONT_EXIT)
        if rate <= 0:
            _unload(lib)
            raise RuntimeError(f"espeak_Initialize failed (returned {rate}) with data path {data_path!r}")
        self._lib: ctypes.CDLL | None = lib
        self.sample_rate: int = rate
        self._chunks: list[bytes] = []
        self._callback = _SYNTH_CALLBACK(self._on_audio)  # keep a reference: ctypes does not
        lib.espeak_SetSynthCallback(self._callback)
        # wavegen also draws from libc rand() (besides espeak's own generator): seed both per call
        self._libc = ctypes.CDLL(None)
        self._libc.srand.argtypes = [ctypes.c_uint]
        self._libc.srand.restype = None
        EspeakEngine._open_in_process = True

    def _on_audio(self, wav, num_samples: int, _events) -> int:
        if num_samples > 0 and wav:
            self._chunks.append(ctypes.string_at(wav, num_samples * 2))
        return 0  # 0 = continue synthesis

    def synthesize(
        self, text: str, *, voice: str, pitch: int, pitch_range: int, rate: int, seed: int = 0
    ) -> np.ndarray:
        """Speak ``text`` with ``voice`` (``"<lang>+<variant>"``); int16 samples at :attr:`sample_rate`.

        ``pitch`` and ``pitch_range`` are espeak's 0..100 scales, ``rate`` words per minute (80..450);
        ``seed`` seeds espeak's noise generators.
        """
        lib = self._lib
        if lib is None:
            raise RuntimeError("EspeakEngine is closed")
        status = lib.espeak_SetVoiceByName(voice.encode())
        if status != _EE_OK:
            raise ValueError(f"espeak-ng has no voice {voice!r} (status {status})")
        params = ((_PARAM_RATE, rate), (_PARAM_PITCH, pitch), (_PARAM_RANGE, pitch_range), (_PARAM_VOLUME, 100))
        for param, value in params:
            status = lib.espeak_SetParameter(param, int(value), 0)
            if status != _EE_OK:
                raise ValueError(f"espeak_SetParameter({param}, {value}) failed with status {status}")
        lib.espeak_ng_SetRandSeed(int(seed) & 0x7FFFFFFF)
        self._libc.srand(int(seed) & 0x7FFFFFFF)
        data = text.encode("utf-8") + b"\0"
        self._chunks = []
        status = lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if status != _EE_OK:
            raise RuntimeError(f"espeak_Synth failed with status {status} for text {text!r}")
        lib.espeak_Synchronize()
        audio = np.frombuffer(b"".join(self._chunks), dtype=np.int16).copy()
        self._chunks = []
        return audio

    def close(self) -> None:
        """Terminate espeak-ng and unload the library (idempotent)."""
        if self._lib is not None:
            self._lib.espeak_Terminate()
            _unload(self._lib)
            self._lib = None
            EspeakEngine._open_in_process = False

    def __enter__(self) -> EspeakEngine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _unload(lib: ctypes.CDLL) -> None:
    close = getattr(_ctypes, "dlclose", None) or getattr(_ctypes, "FreeLibrary")
    close(lib._handle)


def synthesize(text: str, *, voice: str, pitch: int, pitch_range: int, rate: int, seed: int) -> tuple[np.ndarray, int]:
    """Speak ``text`` on a fresh engine: ``(int16 samples, sample_rate)``, reproducible for equal arguments."""
    with EspeakEngine() as engine:
        audio = engine.synthesize(text, voice=voice, pitch=pitch, pitch_range=pitch_range, rate=rate, seed=seed)
        return audio, engine.sample_rate
