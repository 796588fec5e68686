"""minivox: a small synthetic speaker-verification corpus spoken by espeak-ng (VoxCeleb1 layout).

Each speaker is a fixed voice profile (language, voice variant, pitch, pitch range, rate and a
vocal-tract-length warp applied by resampling); each utterance is a different sentence with
per-utterance jitter; each session has its own room, channel colouring, noise and level. Output:
``wav/<spk>/<session>/<nnnnn>.wav`` (16-bit PCM), ``meta/*.tsv``, ``trials/minivox_{O,E,H}.txt``
and ``SYNTHETIC.md``. The same arguments give byte-identical files for any ``num_workers``.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio
from tqdm import tqdm

from sv_toolkit.data import espeak
from sv_toolkit.data.minivox_trials import TrialRequest, TrialUtterance, plan_trials, write_trials
from sv_toolkit.data.minivox_words import make_sentences

__all__ = ["MinivoxSummary", "SpeakerProfile", "synthesize_minivox", "LANGUAGES", "VARIANTS"]

LANGUAGES: tuple[str, ...] = ("en", "de", "fr", "es", "it", "nl", "pl", "sv")
VARIANTS: dict[str, tuple[str, ...]] = {  # espeak-ng voice variants (voices/!v) by declared gender
    "m": ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "Denis", "Diogo", "Henrique", "Hugo",
          "Marco", "antonio", "michel", "miguel", "sandro", "travis", "victor"),
    "f": ("f1", "f2", "f3", "f4", "f5", "Alicia", "Andrea", "Annie", "anika", "aunty", "belinda",
          "linda", "steph", "steph2", "steph3"),
}
_WAV_SUBTYPE = "PCM_16"
# How far voices and recordings vary; tuned so that an untrained fbank-statistics baseline is far
# from perfect while a trained network can still tell speakers apart.
_PROFILE_RANGES = {"pitch": (25, 75), "pitch_range": (20, 80), "rate": (135, 195), "warp": (0.85, 1.18)}
# per utterance: +- espeak units (pitch, pitch_range), +- fraction (rate), +- dB (snr_db, level_db)
_JITTER = {"pitch": 5, "pitch_range": 8, "rate": 0.06, "snr_db": 3.0, "level_db": 1.0}
_SESSION_RANGES = {"snr_db": (28.0, 48.0), "eq_db": 3.0, "tilt_db": 1.0, "rt60": 0.3, "level_db": (-25.0, -23.0),
                   "highpass_hz": (50.0, 120.0), "lowpass_hz": (5500.0, 8000.0)}
_TEST_GROUP_SIZE = 3  # test speakers per (gender, language) group, at least 2 for the H list


@dataclass(frozen=True)
class MinivoxSummary:
    """What :func:`synthesize_minivox` wrote."""

    out_dir: Path
    num_train_speakers: int
    num_test_speakers: int
    num_utterances: int
    total_seconds: float
    trial_lists: dict[str, Path]  # {"minivox_O": path, "minivox_E": ..., "minivox_H": ...}


@dataclass(frozen=True)
class SpeakerProfile:
    """A speaker's fixed voice. ``warp`` > 1 scales formants (a shorter vocal tract), pitch and tempo
    up by that factor, < 1 down: espeak's samples are resampled as if taken at ``rate * warp``."""

    index: int
    speaker_id: str
    split: str  # "train" or "test"
    gender: str  # "m" or "f"
    language: str
    variant: str
    pitch: int  # espeak 0..100
    pitch_range: int  # espeak 0..100
    rate: int  # words per minute
    warp: float

    @property
    def voice(self) -> str:
        return f"{self.language}+{self.variant}"


@dataclass(frozen=True)
class _SpeakerJob:
    profile: SpeakerProfile
    sentences: tuple[str, ...]
    sessions: tuple[str, ...]
    seed: int
    sample_rate: int
    root: Path


def _draw_profile(seed: int, index: int, split: str, gender: str, language: str) -> SpeakerProfile:
    rng = np.random.default_rng([seed, 1, index])
    r = _PROFILE_RANGES
    return SpeakerProfile(
        index=index, speaker_id=f"syn{index + 1:05d}", split=split, gender=gender, language=language,
        variant=str(rng.choice(VARIANTS[gender])), pitch=int(rng.integers(r["pitch"][0], r["pitch"][1] + 1)),
        pitch_range=int(rng.integers(r["pitch_range"][0], r["pitch_range"][1] + 1)),
        rate=int(rng.integers(r["rate"][0], r["rate"][1] + 1)), warp=round(float(rng.uniform(*r["warp"])), 3),
    )


def _draw_profiles(seed: int, num_train: int, num_test: int) -> list[SpeakerProfile]:
    """Train speakers draw gender and language freely; test speakers come in (gender, language)
    groups of at least two, so that the H list can pair same-gender, same-language impostors."""
    rng = np.random.default_rng([seed, 0])
    groups = [(g, lang) for g in ("m", "f") for lang in LANGUAGES]
    train = [(str(rng.choice(["m", "f"])), str(rng.choice(LANGUAGES))) for _ in range(num_train)]
    num_groups = max(1, num_test // _TEST_GROUP_SIZE)
    order = rng.permutation(len(groups))
    test = [groups[order[i % num_groups % len(groups)]] for i in range(num_test)]
    labels = [("train", g, lang) for g, lang in train] + [("test", g, lang) for g, lang in test]
    return [_draw_profile(seed, i, split, g, lang) for i, (split, g, lang) in enumerate(labels)]


# ---------------------------------------------------------------------------------------------
# audio: one utterance = espeak -> trim -> VTL warp + resample -> room -> noise -> channel -> level
# ---------------------------------------------------------------------------------------------

_RESAMPLERS: dict[tuple[int, int], torchaudio.transforms.Resample] = {}


def _resample(x: np.ndarray, orig: int, new: int) -> np.ndarray:
    if orig == new:
        return x
    key = (orig, new)
    if key not in _RESAMPLERS:  # kernels are cached: building one is the expensive part
        _RESAMPLERS[key] = torchaudio.transforms.Resample(orig, new)
    with torch.no_grad():
        return _RESAMPLERS[key](torch.from_numpy(x)[None]).numpy()[0]


def _warped_rate(espeak_rate: int, warp: float) -> int:
    """Pretend espeak's samples were taken at ``rate * warp``; rounded to 100 Hz (fast resampling)."""
    return int(round(espeak_rate * warp / 100.0)) * 100


def _trim_silence(x: np.ndarray, sr: int, margin_s: float = 0.08) -> np.ndarray:
    hop = sr // 100
    frames = len(x) // hop
    if frames == 0:
        return x
    energy = (x[: frames * hop].reshape(frames, hop) ** 2).mean(axis=1)
    loud = np.flatnonzero(energy > energy.max() * 1e-4)
    margin = int(margin_s * sr)
    return x[max(0, loud[0] * hop - margin): min(len(x), (loud[-1] + 1) * hop + margin)]


def _fftconvolve(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Linear convolution truncated to ``len(x)`` (causal filter)."""
    n = len(x) + len(h) - 1
    size = 1 << (n - 1).bit_length()
    return np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(h, size), size)[: len(x)]


def _channel_fir(rng: np.random.Generator, sr: int, taps: int = 129) -> np.ndarray:
    """A random microphone/codec colouring: band limits, spectral tilt and a few broad EQ bumps."""
    freqs = np.linspace(0.0, sr / 2, 257)
    octaves = np.log2(np.maximum(freqs, 20.0) / 1000.0)  # octaves relative to 1 kHz
    tilt, eq = _SESSION_RANGES["tilt_db"], _SESSION_RANGES["eq_db"]
    gain_db = rng.uniform(-tilt, tilt) * octaves
    for _ in range(3):
        centre = rng.uniform(np.log2(150 / 1000), np.log2(6000 / 1000))
        width = rng.uniform(0.3, 1.2)
        gain_db += rng.uniform(-eq, eq) * np.exp(-0.5 * ((octaves - centre) / width) ** 2)
    highpass = rng.uniform(*_SESSION_RANGES["highpass_hz"])
    lowpass = min(rng.uniform(*_SESSION_RANGES["lowpass_hz"]), 0.47 * sr)
    gain_db -= 12.0 * np.maximum(0.0, np.log2(highpass / np.maximum(freqs, 1.0)))
    gain_db -= 36.0 * np.maximum(0.0, np.log2(np.maximum(freqs, 1.0) / lowpass))
    impulse = np.fft.irfft(10.0 ** (gain_db / 20.0))  # zero phase, 512 taps
    impulse = np.roll(impulse, taps // 2)[:taps] * np.hanning(taps)
    return impulse / np.sqrt(np.sum(impulse**2))


def _room_ir(rng: np.random.Generator, sr: int) -> np.ndarray | None:
    """Exponentially decaying noise tail after a direct path; ``None`` for a dry session."""
    rt60 = rng.uniform(0.0, _SESSION_RANGES["rt60"])
    drr_db = rng.uniform(0.0, 12.0)
    if rt60 < 0.12:
        return None
    t = np.arange(int(rt60 * sr)) / sr
    tail = rng.standard_normal(len(t)) * np.exp(-6.9 * t / rt60)
    tail[0] = 0.0
    tail *= 10.0 ** (-drr_db / 20.0) / np.sqrt(np.sum(tail**2))
    tail[0] = 1.0
    return tail


@dataclass(frozen=True)
class _Session:
    name: str
    fir: np.ndarray
    room: np.ndarray | None
    snr_db: float
    noise_slope_db: float  # dB per octave
    level_db: float  # speech RMS in dBFS


def _draw_session(seed: int, spk_index: int, sess_index: int, name: str, sr: int) -> _Session:
    rng = np.random.default_rng([seed, 2, spk_index, sess_index])
    return _Session(name=name, fir=_channel_fir(rng, sr), room=_room_ir(rng, sr),
                    snr_db=float(rng.uniform(*_SESSION_RANGES["snr_db"])), noise_slope_db=float(rng.uniform(-6.0, 0.0)),
                    level_db=float(rng.uniform(*_SESSION_RANGES["level_db"])))


def _coloured_noise(rng: np.random.Generator, n: int, slope_db: float, sr: int) -> np.ndarray:
    """Gaussian noise with a spectral slope of ``slope_db`` per octave, unit RMS."""
    size = 1 << max(n - 1, 1).bit_length()  # FFT-friendly length, cropped to n
    spectrum = np.fft.rfft(rng.standard_normal(size))
    freqs = np.maximum(np.fft.rfftfreq(size, 1.0 / sr), 50.0)
    noise = np.fft.irfft(spectrum * 10.0 ** (slope_db * np.log2(freqs / 1000.0) / 20.0), size)[:n]
    return noise / (np.sqrt(np.mean(noise**2)) + 1e-12)


def _render(job: _SpeakerJob, utt_index: int, session: _Session) -> np.ndarray:
    """One utterance as float32 at ``job.sample_rate``; randomness from (seed, speaker, utterance)."""
    p, sr = job.profile, job.sample_rate
    rng = np.random.default_rng([job.seed, 3, p.index, utt_index])
    j = _JITTER
    pitch = int(np.clip(p.pitch + rng.integers(-j["pitch"], j["pitch"] + 1), 0, 100))
    pitch_range = int(np.clip(p.pitch_range + rng.integers(-j["pitch_range"], j["pitch_range"] + 1), 0, 100))
    rate = int(round(p.rate * (1.0 + rng.uniform(-j["rate"], j["rate"]))))
    raw, espeak_rate = espeak.synthesize(job.sentences[utt_index], voice=p.voice, pitch=pitch, pitch_range=pitch_range,
                                         rate=rate, seed=int(rng.integers(1, 2**31 - 1)))
    if len(raw) == 0:
        raise RuntimeError(f"espeak-ng produced no audio for {p.voice!r}: {job.sentences[utt_index]!r}")
    speech = _trim_silence(raw.astype(np.float64) / 32768.0, espeak_rate)
    speech = _resample(speech.astype(np.float32), _warped_rate(espeak_rate, p.warp), sr).astype(np.float64)
    speech /= np.sqrt(np.mean(speech**2)) + 1e-12
    if session.room is not None:
        speech = _fftconvolve(speech, session.room)
    snr_db = session.snr_db + rng.uniform(-j["snr_db"], j["snr_db"])
    noise = _coloured_noise(rng, len(speech), session.noise_slope_db, sr)
    mixed = _fftconvolve(speech + noise * 10.0 ** (-snr_db / 20.0), session.fir)
    level_db = session.level_db + rng.uniform(-j["level_db"], j["level_db"])
    mixed *= 10.0 ** (level_db / 20.0) / (np.sqrt(np.mean(mixed**2)) + 1e-12)
    peak = np.max(np.abs(mixed))
    if peak > 0.98:
        mixed *= 0.98 / peak
    return mixed.astype(np.float32)


def _utterance_path(speaker_id: str, sessions: tuple[str, ...], utt_index: int) -> str:
    """Utterances go round-robin over the sessions, numbered from 1 within each session."""
    session = sessions[utt_index % len(sessions)]
    return f"{speaker_id}/{session}/{utt_index // len(sessions) + 1:05d}.wav"


def _synthesize_speaker(job: _SpeakerJob) -> list[tuple[str, str, str, float, str]]:
    """Write all utterances of one speaker; rows (path, speaker, session, seconds, text)."""
    p = job.profile
    sessions = [_draw_session(job.seed, p.index, s, name, job.sample_rate) for s, name in enumerate(job.sessions)]
    rows = []
    for u in range(len(job.sentences)):
        s = u % len(sessions)
        rel = _utterance_path(p.speaker_id, job.sessions, u)
        audio = _render(job, u, sessions[s])
        path = job.root / "wav" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, audio, job.sample_rate, subtype=_WAV_SUBTYPE, format="WAV")
        rows.append((rel, p.speaker_id, sessions[s].name, len(audio) / job.sample_rate, job.sentences[u]))
    return rows


def _init_worker() -> None:
    torch.set_num_threads(1)


def _run_jobs(jobs: list[_SpeakerJob], num_workers: int, progress: bool) -> list[tuple[str, str, str, float, str]]:
    """Synthesise every speaker (in order of ``jobs``), in this process or a pool of ``num_workers``."""
    rows: list[tuple[str, str, str, float, str]] = []
    pool, torch_threads = None, torch.get_num_threads()
    if num_workers == 1:
        torch.set_num_threads(1)  # small resampling kernels: intra-op threads only cost time
    else:  # before tqdm starts its monitor thread; fork needs no __main__ guard in the caller
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        pool = multiprocessing.get_context(method).Pool(num_workers, initializer=_init_worker)
    try:
        results = map(_synthesize_speaker, jobs) if pool is None else pool.imap(_synthesize_speaker, jobs)
        total = sum(len(j.sentences) for j in jobs)
        with tqdm(total=total, unit="utt", desc="minivox", disable=not progress, file=sys.stderr) as bar:
            for speaker_rows in results:
                rows.extend(speaker_rows)
                bar.update(len(speaker_rows))
    finally:
        torch.set_num_threads(torch_threads)
        if pool is not None:
            pool.terminate()
            pool.join()
    return rows


def _check_sizes(**sizes: int) -> None:
    minimum = {"num_train_speakers": 1, "num_test_speakers": 2, "utts_per_speaker": 2, "sessions_per_speaker": 1,
               "min_words": 1, "num_workers": 1, "sample_rate": 8000}
    for name, low in minimum.items():
        if sizes[name] < low:
            raise ValueError(f"minivox: {name}={sizes[name]} must be >= {low}")
    if sizes["sessions_per_speaker"] > sizes["utts_per_speaker"] or sizes["max_words"] < sizes["min_words"]:
        raise ValueError(f"minivox: need sessions_per_speaker={sizes['sessions_per_speaker']} <= utts_per_speaker="
                         f"{sizes['utts_per_speaker']} and min_words={sizes['min_words']} <= "
                         f"max_words={sizes['max_words']}")
    missing = sorted({v for vs in VARIANTS.values() for v in vs} - {v.name for v in espeak.list_variants()})
    missing += [lang for lang in LANGUAGES if not espeak.has_language(lang)]
    if missing:
        raise RuntimeError(f"the installed espeakng-loader data lacks the voices {missing}; "
                           "reinstall it with pip install -e '.[demo]'")


def synthesize_minivox(out_dir: Path, *, num_train_speakers: int, num_test_speakers: int,
                       utts_per_speaker: int, sessions_per_speaker: int, seed: int,
                       trials_o: int, trials_e: int, trials_h: int,
                       sample_rate: int = 16000, min_words: int = 6, max_words: int = 14,
                       num_workers: int = 1, progress: bool = True) -> MinivoxSummary:
    """Synthesise the minivox corpus into ``out_dir`` (must not exist) and return its summary.

    Everything is built in ``<out_dir>.tmp-<pid>`` and renamed into place at the end.
    Raises FileExistsError if ``out_dir`` exists, ValueError for impossible sizes or trial counts
    (before any synthesis), ImportError without the espeakng-loader wheel (``pip install -e '.[demo]'``).
    """
    out_dir = Path(out_dir)
    if out_dir.exists():
        raise FileExistsError(f"minivox output {out_dir} already exists; remove it or choose another out_dir")
    espeak.espeak_data_path()  # fail early (ImportError with the install hint) without the wheel
    _check_sizes(num_train_speakers=num_train_speakers, num_test_speakers=num_test_speakers,
                 utts_per_speaker=utts_per_speaker, sessions_per_speaker=sessions_per_speaker, min_words=min_words,
                 max_words=max_words, num_workers=num_workers, sample_rate=sample_rate)
    tmp = out_dir.parent / f"{out_dir.name}.tmp-{os.getpid()}"
    profiles = _draw_profiles(seed, num_train_speakers, num_test_speakers)
    sentences = make_sentences(seed, len(profiles) * utts_per_speaker, min_words, max_words)
    jobs = [_SpeakerJob(p, tuple(sentences[p.index * utts_per_speaker:(p.index + 1) * utts_per_speaker]),
                        tuple(f"sess{p.index * sessions_per_speaker + s + 1:07d}" for s in range(sessions_per_speaker)),
                        seed, sample_rate, tmp) for p in profiles]
    test_utts = [TrialUtterance(_utterance_path(j.profile.speaker_id, j.sessions, u), j.profile.speaker_id,
                                j.sessions[u % sessions_per_speaker], f"{j.profile.gender}-{j.profile.language}")
                 for j in jobs if j.profile.split == "test" for u in range(utts_per_speaker)]
    requests = [TrialRequest("minivox_O", "trials_o", trials_o, False),
                TrialRequest("minivox_E", "trials_e", trials_e, False),
                TrialRequest("minivox_H", "trials_h", trials_h, True)]
    trials = plan_trials(seed, test_utts, requests)  # raises before any synthesis

    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        rows = _run_jobs(jobs, num_workers, progress)
        trial_paths = write_trials(tmp / "trials", trials)
        _write_meta(tmp, profiles, rows, seed, sample_rate, utts_per_speaker, sessions_per_speaker)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return MinivoxSummary(
        out_dir=out_dir, num_train_speakers=num_train_speakers, num_test_speakers=num_test_speakers,
        num_utterances=len(rows), total_seconds=float(sum(r[3] for r in rows)),
        trial_lists={name: out_dir / path.relative_to(tmp) for name, path in trial_paths.items()},
    )


def _write_meta(root: Path, profiles: list[SpeakerProfile], rows: list[tuple[str, str, str, float, str]],
                seed: int, sample_rate: int, utts_per_speaker: int, sessions_per_speaker: int) -> None:
    meta = root / "meta"
    meta.mkdir()
    lines = ["speaker\tsplit\tgender\tlanguage\tvoice\tvariant\tpitch\tpitch_range\trate\twarp"]
    lines += [f"{p.speaker_id}\t{p.split}\t{p.gender}\t{p.language}\t{p.voice}\t{p.variant}\t{p.pitch}\t"
              f"{p.pitch_range}\t{p.rate}\t{p.warp:.3f}" for p in profiles]
    (meta / "speakers.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    lines = ["path\tspeaker\tsession\tseconds\ttext"] + [f"{r[0]}\t{r[1]}\t{r[2]}\t{r[3]:.3f}\t{r[4]}" for r in rows]
    (meta / "utterances.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    n_train = sum(p.split == "train" for p in profiles)
    text = f"""# minivox: SYNTHETIC speech

Every file under this directory is synthetic: speech generated by espeak-ng (espeakng-loader
{metadata.version("espeakng-loader")}) with randomised voice profiles, rooms, channels and noise by
`sv_toolkit.data.minivox.synthesize_minivox`. No recording of any real person is included.
Speaker ids start with `syn` to keep that visible wherever a path goes.

- seed: {seed}
- speakers: {n_train} train + {len(profiles) - n_train} test (disjoint), see meta/speakers.tsv
- utterances: {len(rows)} ({utts_per_speaker} per speaker over {sessions_per_speaker} sessions), \
{sum(r[3] for r in rows) / 3600:.3f} hours, {sample_rate} Hz mono 16-bit PCM
- layout: wav/<speaker>/<session>/<nnnnn>.wav (VoxCeleb1 style)
- trials: trials/minivox_O.txt (random, balanced), trials/minivox_E.txt (larger),
  trials/minivox_H.txt (non-targets share gender and language); format `label enroll test`
"""
    (root / "SYNTHETIC.md").write_text(text, encoding="utf-8")
