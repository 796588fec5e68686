"""Tiny fake corpora in the real layouts (VoxCeleb1/2, MUSAN, RIRS_NOISES) with the bad files real downloads have."""
from __future__ import annotations

import shutil
import subprocess
import zlib
from pathlib import Path

import numpy as np
import soundfile as sf

FFMPEG = shutil.which("ffmpeg")


def write_wav(path: Path, seconds: float, sr: int = 16000, channels: int = 1, seed: int = 0) -> Path:
    """A tone plus noise (different per seed), 16-bit PCM."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    tone = 0.3 * np.sin(2 * np.pi * (100 + 40 * (seed % 17)) * t) + 0.05 * rng.standard_normal(t.size)
    sf.write(str(path), np.repeat(tone[:, None], channels, axis=1), sr, subtype="PCM_16")
    return path


def make_voxceleb_tree(
    root: Path, speakers: list[str], videos: int = 2, utts: int = 2, seconds: float = 1.2, seed: int = 0
) -> list[str]:
    """``root/<spk>/<video>/<nnnnn>.wav``; returns the keys."""
    keys = []
    for s, spk in enumerate(speakers):
        for v in range(videos):
            for u in range(utts):
                key = f"{spk}/vid{s:03d}_{v:02d}x/{u + 1:05d}.wav"
                write_wav(root / key, seconds, seed=seed + 1000 * s + 10 * v + u)
                keys.append(key)
    return keys


def make_m4a(path: Path, seconds: float = 1.2, sr: int = 16000, frequency: float = 300.0) -> Path:
    """An AAC file made by ffmpeg (needs ffmpeg)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [FFMPEG, "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
         f"sine=frequency={frequency}:duration={seconds}:sample_rate={sr}", "-c:a", "aac", str(path)],
        check=True,
    )
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
    write_wav(root / bad["rate"], 1.5, sr=8000)
    write_wav(root / bad["stereo"], 1.5, channels=2, seed=7)
    (root / bad["m4a"]).write_bytes(b"\x00\x00\x00\x18ftypM4A ")  # an m4a left in a wav tree (not converted)
    return bad


def make_musan(root: Path, files_per_source: int = 2) -> None:
    """``musan/{noise,speech,music}/<source>/*.wav`` plus the README / ANNOTATIONS files MUSAN ships."""
    for kind, sources in {"noise": ["free-sound", "sound-bible"], "speech": ["librivox"], "music": ["fma"]}.items():
        for source in sources:
            for i in range(files_per_source):
                seed = zlib.crc32(f"{kind}{source}{i}".encode()) % 1000
                write_wav(root / kind / source / f"{kind}-{source}-{i:04d}.wav", 3.0, seed=seed)
            (root / kind / source / "ANNOTATIONS").write_text("fake annotations\n")
    (root / "README").write_text("fake MUSAN\n")


def make_rirs(root: Path, rooms: int = 2, per_room: int = 2) -> None:
    """``RIRS_NOISES/simulated_rirs/<size>room/RoomNNN/RoomNNN-NNNNN.wav``: decaying noise bursts."""
    rng = np.random.default_rng(3)
    for size in ("smallroom", "mediumroom"):
        for r in range(rooms):
            for i in range(per_room):
                n = 4000
                rir = rng.standard_normal(n) * np.exp(-np.arange(n) / 800.0) * 0.1
                rir[40] = 0.9  # direct path
                path = root / size / f"Room{r + 1:03d}" / f"Room{r + 1:03d}-{i + 1:05d}.wav"
                path.parent.mkdir(parents=True, exist_ok=True)
                sf.write(str(path), rir, 16000, subtype="PCM_16")
