"""minivox: the synthetic espeak-ng corpus (layout, determinism, speakers, trial lists, errors)."""
from __future__ import annotations

import hashlib
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("espeakng_loader", reason="minivox synthesis needs the [demo] extra (espeakng-loader)")

from sv_toolkit.data import espeak, minivox  # noqa: E402
from sv_toolkit.data.minivox import MinivoxSummary, synthesize_minivox  # noqa: E402

TINY = dict(num_train_speakers=6, num_test_speakers=6, utts_per_speaker=4, sessions_per_speaker=2, seed=11,
            trials_o=20, trials_e=30, trials_h=12, progress=False)
PATH_RE = re.compile(r"^syn\d{5}/sess\d{7}/\d{5}\.wav$")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> MinivoxSummary:
    return synthesize_minivox(tmp_path_factory.mktemp("mv") / "corpus", num_workers=1, **TINY)


def _speakers(root: Path) -> dict[str, dict[str, str]]:
    lines = (root / "meta" / "speakers.tsv").read_text().splitlines()
    header = lines[0].split("\t")
    return {row[0]: dict(zip(header, row)) for row in (line.split("\t") for line in lines[1:])}


def _trials(path: Path) -> list[tuple[int, str, str]]:
    rows = [line.split() for line in path.read_text().splitlines()]
    assert all(len(r) == 3 for r in rows), path
    return [(int(r[0]), r[1], r[2]) for r in rows]


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_and_audio_format(corpus):
    root = corpus.out_dir
    wavs = sorted(p.relative_to(root / "wav").as_posix() for p in (root / "wav").rglob("*.wav"))
    assert len(wavs) == corpus.num_utterances == 12 * 4
    assert all(PATH_RE.match(w) for w in wavs), wavs[:3]
    seconds = 0.0
    for rel in wavs:
        info = sf.info(root / "wav" / rel)
        assert (info.samplerate, info.channels, info.subtype, info.format) == (16000, 1, "PCM_16", "WAV")
        audio, _ = sf.read(root / "wav" / rel, dtype="int16")
        assert 1.0 < len(audio) / 16000 < 10.0 and 200 < np.sqrt(np.mean(audio.astype(float) ** 2)) < 20000
        seconds += len(audio) / 16000
    assert corpus.total_seconds == pytest.approx(seconds, rel=1e-6)
    assert (corpus.num_train_speakers, corpus.num_test_speakers) == (6, 6)
    readme = (root / "SYNTHETIC.md").read_text()
    assert "synthetic" in readme.lower() and "seed: 11" in readme
    assert not list(root.parent.glob("corpus.tmp-*"))


def test_speakers_are_profiles_and_sentences_differ(corpus):
    root = corpus.out_dir
    header = (root / "meta" / "speakers.tsv").read_text().splitlines()[0].split("\t")
    assert header == ["speaker", "split", "gender", "language", "voice", "variant", "pitch", "pitch_range", "rate",
                      "warp"]
    speakers = _speakers(root)
    assert set(speakers) == {p.name for p in (root / "wav").iterdir()}
    for spk, row in speakers.items():
        assert spk.startswith("syn") and row["gender"] in ("m", "f")
        assert row["voice"] == f"{row['language']}+{row['variant']}"
        assert row["variant"] in minivox.VARIANTS[row["gender"]] and row["language"] in minivox.LANGUAGES
        assert len({p.name for p in (root / "wav" / spk).iterdir()}) == 2  # sessions
    utts = [line.split("\t") for line in (root / "meta" / "utterances.tsv").read_text().splitlines()[1:]]
    assert len(utts) == 48 and len({u[4] for u in utts}) == 48  # every utterance its own sentence


def test_train_and_test_speakers_are_disjoint(corpus):
    speakers = _speakers(corpus.out_dir)
    train = {s for s, r in speakers.items() if r["split"] == "train"}
    test = {s for s, r in speakers.items() if r["split"] == "test"}
    assert len(train) == 6 and len(test) == 6 and not train & test
    for path in corpus.trial_lists.values():
        listed = {p.split("/")[0] for _, e, t in _trials(path) for p in (e, t)}
        assert listed <= test


def test_trial_lists(corpus):
    root = corpus.out_dir
    speakers = _speakers(root)
    assert set(corpus.trial_lists) == {"minivox_O", "minivox_E", "minivox_H"}
    sizes = {"minivox_O": TINY["trials_o"], "minivox_E": TINY["trials_e"], "minivox_H": TINY["trials_h"]}
    for name, path in corpus.trial_lists.items():
        assert path == root / "trials" / f"{name}.txt" and path.is_file()
        trials = _trials(path)
        assert len(trials) == sizes[name] and sum(t[0] for t in trials) == sizes[name] // 2
        pairs = [frozenset((e, t)) for _, e, t in trials]
        assert len(set(pairs)) == len(pairs) and all(len(p) == 2 for p in pairs)  # no duplicates, no self pairs
        for label, enroll, test in trials:
            assert (root / "wav" / enroll).is_file() and (root / "wav" / test).is_file()
            (s1, sess1, _), (s2, sess2, _) = enroll.split("/"), test.split("/")
            assert (s1 == s2) == bool(label)
            if label:
                assert sess1 != sess2  # enough cross-session pairs exist at this size
            elif name == "minivox_H":
                a, b = speakers[s1], speakers[s2]
                assert (a["gender"], a["language"]) == (b["gender"], b["language"])


def test_same_arguments_give_identical_files_for_any_worker_count(corpus, tmp_path):
    again = synthesize_minivox(tmp_path / "again", num_workers=2, **TINY)
    assert _digests(again.out_dir) == _digests(corpus.out_dir)
    small = dict(num_train_speakers=1, num_test_speakers=2, utts_per_speaker=2, trials_o=2, trials_e=2, trials_h=2)
    other = synthesize_minivox(tmp_path / "other", **{**TINY, **small, "seed": 12})
    first = "syn00001/sess0000001/00001.wav"
    a, b = (sf.read(root / "wav" / first)[0][:1000] for root in (corpus.out_dir, other.out_dir))
    assert not np.array_equal(a, b)  # the seed matters


def test_espeak_output_depends_only_on_arguments():
    kwargs = dict(voice="en+m3", pitch=50, pitch_range=50, rate=170, seed=5)
    first, rate = espeak.synthesize("a quiet farmer carried seven baskets", **kwargs)
    espeak.synthesize("something else in between", voice="de+f2", pitch=30, pitch_range=70, rate=200, seed=6)
    second, _ = espeak.synthesize("a quiet farmer carried seven baskets", **kwargs)
    assert rate == 22050 and len(first) > rate and np.array_equal(first, second)
    with pytest.raises(ValueError, match="no voice"):
        espeak.synthesize("hello", voice="xx+nothing", pitch=50, pitch_range=50, rate=170, seed=1)


@pytest.mark.parametrize("key", ["trials_o", "trials_e", "trials_h"])
def test_too_many_trials_names_the_value(tmp_path, key):
    out = tmp_path / "corpus"
    with pytest.raises(ValueError, match=f"{key}=100000"):
        synthesize_minivox(out, **{**TINY, key: 100000})
    assert not out.exists() and not list(tmp_path.iterdir())


def test_existing_out_dir_is_refused(tmp_path):
    (tmp_path / "corpus").mkdir()
    with pytest.raises(FileExistsError, match="corpus"):
        synthesize_minivox(tmp_path / "corpus", **TINY)


def test_failure_leaves_no_corpus(tmp_path, monkeypatch):
    def broken(job):
        raise RuntimeError("synthesis failed")

    monkeypatch.setattr(minivox, "_synthesize_speaker", broken)
    with pytest.raises(RuntimeError, match="synthesis failed"):
        synthesize_minivox(tmp_path / "corpus", **TINY)
    assert not list(tmp_path.iterdir())


def test_missing_wheel_names_the_demo_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "espeakng_loader", None)
    with pytest.raises(ImportError, match=re.escape("pip install -e '.[demo]'")):
        espeak.espeak_data_path()
