"""Tiny fake corpora in the real layouts, with the bad files real downloads have.

VoxCeleb1 / VoxCeleb2 trees (``<id>/<11-char video>/<nnnnn>.wav``, VoxCeleb2 also as AAC ``.m4a`` where ffmpeg
exists), VoxCeleb-style trial lists, MUSAN (``noise/ speech/ music/<source>/*.wav``), RIRS_NOISES simulated rooms
and a LibriSpeech-mini tree, all filled with the speech-like voices of synthetic_voices.py. Importable from any test
module (pytest puts this folder, the one of tests/conftest.py, on sys.path).
"""
from __future__ import annotations

import itertools
import shutil
import subprocess
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile as sf

from synthetic_voices import music, noise, speak, voice_of

FFMPEG = shutil.which("ffmpeg")
_VIDEO_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def write_wav(path: Path, seconds: float, sr: int = 16000, channels: int = 1, seed: int = 0,
              speaker: str | None = None) -> Path:
    """``seconds`` of ``speaker``'s synthetic voice (default: a voice of its own per seed), 16-bit PCM."""
    path.parent.mkdir(parents=True, exist_ok=True)
    wave = speak(voice_of(speaker if speaker is not None else f"voice{seed}"), seconds, sr, seed)
    sf.write(str(path), np.repeat(wave[:, None], channels, axis=1), sr, subtype="PCM_16")
    return path


def video_id(name: str) -> str:
    """An 11-character YouTube-like video id, the same for the same name."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    return "".join(_VIDEO_ALPHABET[i] for i in rng.integers(0, len(_VIDEO_ALPHABET), 11))


def voxceleb_speakers(count: int, version: int = 2, first: int = 1) -> list[str]:
    """Speaker ids as VoxCeleb spells them: ``id0xxxx`` (VoxCeleb2) or ``id1xxxx`` (VoxCeleb1)."""
    return [f"id{version % 2}{i:04d}" for i in range(first, first + count)]


def make_voxceleb_tree(
    root: Path, speakers: Sequence[str], videos: int = 2, utts: int = 2, seconds: float = 1.2, seed: int = 0,
    suffix: str = ".wav",
) -> list[str]:
    """``root/<spk>/<video>/<nnnnn><suffix>`` (wav, or m4a through ffmpeg); each speaker speaks in its own voice.

    Returns the keys, in the order written."""
    keys = []
    for s, spk in enumerate(speakers):
        for v in range(videos):
            video = video_id(f"{spk}-{v}")
            for u in range(utts):
                key = f"{spk}/{video}/{u + 1:05d}{suffix}"
                utt_seed = seed + 1000 * s + 10 * v + u
                if suffix == ".m4a":
                    make_m4a(root / key, seconds, seed=utt_seed, speaker=spk)
                else:
                    write_wav(root / key, seconds, seed=utt_seed, speaker=spk)
                keys.append(key)
    return keys


def make_m4a(path: Path, seconds: float = 1.2, sr: int = 16000, seed: int = 0, speaker: str | None = None) -> Path:
    """An AAC file of a synthetic voice, encoded by ffmpeg (needs ffmpeg)."""
    if FFMPEG is None:
        raise RuntimeError("make_m4a needs ffmpeg on PATH; mark the test with the ffmpeg skip")
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = (speak(voice_of(speaker if speaker is not None else f"voice{seed}"), seconds, sr, seed) * 32767)
    subprocess.run(
        [FFMPEG, "-nostdin", "-loglevel", "error", "-y", "-f", "s16le", "-ar", str(sr), "-ac", "1", "-i", "pipe:0",
         "-c:a", "aac", str(path)],
        input=pcm.astype("<i2").tobytes(), check=True,
    )
    return path


def _evenly(items: list, n: int) -> list:
    """``n`` of ``items`` spread evenly over the list, first and last included."""
    return [items[i] for i in np.linspace(0, len(items) - 1, n).round().astype(int)] if n > 0 else []


def write_trial_list(path: Path, keys: Sequence[str], max_trials: int | None = None) -> Path:
    """A VoxCeleb-style list (``label enroll test``, 1 = same speaker) over pairs of ``keys``.

    All pairs, or ``max_trials`` of them spread evenly over the target and nontarget pairs, up to half target."""
    pairs = list(itertools.combinations(keys, 2))
    label = {p: int(p[0].split("/")[0] == p[1].split("/")[0]) for p in pairs}
    if max_trials is not None:
        target = [p for p in pairs if label[p]]
        n_target = min(len(target), max_trials // 2)
        nontarget = [p for p in pairs if not label[p]]
        chosen = set(_evenly(target, n_target)) | set(_evenly(nontarget, min(len(nontarget), max_trials - n_target)))
        pairs = [p for p in pairs if p in chosen]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{label[p]} {p[0]} {p[1]}\n" for p in pairs))
    return path


def add_bad_files(root: Path, spk: str) -> dict[str, str]:
    """A corrupt, an empty, an 8 kHz, a stereo and an unconverted file under ``root/spk``; name -> key."""
    bad = {
        "corrupt": f"{spk}/badvid00001/00001.wav",
        "empty": f"{spk}/badvid00001/00002.wav",
        "rate": f"{spk}/badvid00001/00003.wav",
        "stereo": f"{spk}/badvid00001/00004.wav",
        "m4a": f"{spk}/badvid00001/00005.m4a",
    }
    (root / bad["corrupt"]).parent.mkdir(parents=True, exist_ok=True)
    (root / bad["corrupt"]).write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage that is not audio")
    (root / bad["empty"]).write_bytes(b"")
    write_wav(root / bad["rate"], 1.5, sr=8000, speaker=spk)
    write_wav(root / bad["stereo"], 1.5, channels=2, seed=7, speaker=spk)
    (root / bad["m4a"]).write_bytes(b"\x00\x00\x00\x18ftypM4A ")  # an m4a left in a wav tree (not converted)
    return bad


def make_musan(root: Path, files_per_source: int = 2, seconds: float = 3.0) -> None:
    """``musan/{noise,speech,music}/<source>/*.wav`` plus the README / ANNOTATIONS files MUSAN ships."""
    sources = {"noise": ["free-sound", "sound-bible"], "speech": ["librivox"], "music": ["fma"]}
    for kind, names in sources.items():
        for source in names:
            for i in range(files_per_source):
                seed = zlib.crc32(f"{kind}{source}{i}".encode()) % 1000
                if kind == "speech":  # MUSAN speech is read aloud by many speakers: a voice per file
                    wave = speak(voice_of(f"musan-{source}-{i}"), seconds, seed=seed)
                else:
                    wave = (noise if kind == "noise" else music)(seconds, seed=seed)
                path = root / kind / source / f"{kind}-{source}-{i:04d}.wav"
                path.parent.mkdir(parents=True, exist_ok=True)
                sf.write(str(path), wave, 16000, subtype="PCM_16")
            (root / kind / source / "ANNOTATIONS").write_text("fake annotations\n")
    (root / "README").write_text("fake MUSAN\n")


def make_rirs(root: Path, rooms: int = 2, per_room: int = 2) -> None:
    """``RIRS_NOISES/simulated_rirs/<size>room/RoomNNN/RoomNNN-NNNNN.wav`` (decaying noise bursts with a direct path
    at sample 40) and the ``rir_list`` / ``room_info`` files each room size has there (not audio: left alone)."""
    rng = np.random.default_rng(3)
    for size in ("smallroom", "mediumroom"):
        listing = []
        for r in range(rooms):
            for i in range(per_room):
                n = 4000
                rir = rng.standard_normal(n) * np.exp(-np.arange(n) / 800.0) * 0.1
                rir[40] = 0.9  # direct path
                room, name = f"Room{r + 1:03d}", f"Room{r + 1:03d}-{i + 1:05d}"
                path = root / size / room / f"{name}.wav"
                path.parent.mkdir(parents=True, exist_ok=True)
                sf.write(str(path), rir, 16000, subtype="PCM_16")
                listing.append(f"--rir-id {size}-{name} --room-id {size}-{room} "
                               f"RIRS_NOISES/simulated_rirs/{size}/{room}/{name}.wav\n")
        (root / size / "rir_list").write_text("".join(listing))
        (root / size / "room_info").write_text("".join(f"{size}-Room{r + 1:03d} 5.0 4.0 3.0\n" for r in range(rooms)))


def make_librispeech_mini(root: Path, train_speakers: int = 4, test_speakers: int = 3, test_utts: int = 3,
                          train_seconds: float = 7.0, test_seconds: float = 2.0) -> None:
    """The ``librispeech_mini`` layout that sv_toolkit/data/librimini.py imports: ``train/<spk>-<chapter>-<utt>.flac``
    (one long utterance per speaker) and ``test/<spk>/<spk>-<chapter>-<utt>.flac``."""
    for s in range(train_speakers):
        spk, chapter = 100 + 17 * s, 1200 + s
        path = root / "train" / f"{spk}-{chapter}-0000.flac"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), speak(voice_of(f"libri{spk}"), train_seconds, seed=s), 16000, subtype="PCM_16")
    for s in range(test_speakers):
        spk, chapter = 3000 + 5 * s, 160000 + s
        for u in range(test_utts):
            path = root / "test" / str(spk) / f"{spk}-{chapter}-{u:04d}.flac"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(str(path), speak(voice_of(f"libri{spk}"), test_seconds, seed=100 * s + u), 16000,
                     subtype="PCM_16")
