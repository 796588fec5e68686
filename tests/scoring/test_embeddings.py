import numpy as np
import pytest
import soundfile as sf
import torch

from sv_toolkit.data.manifests import Utterance
from sv_toolkit.features.store import FbankSettings, FeatureStore, write_feature_store
from sv_toolkit.models import build_model
from sv_toolkit.scoring import (
    AudioFeatureSource,
    StoreFeatureSource,
    extract_embeddings,
    load_embedding_arrays,
    load_embeddings,
    save_embeddings,
    speaker_means,
)
from sv_toolkit.scoring.buckets import plan_batches
from sv_toolkit.scoring.norm import length_normalise
from sv_toolkit.scoring.sources import audio_source_from_list

CPU = torch.device("cpu")


class MemorySource:
    """A FeatureSource over in-memory arrays."""

    def __init__(self, feats):
        self.feats = feats
        self.keys = [f"utt{i:03d}" for i in range(len(feats))]
        self.num_mel_bins = feats[0].shape[1]

    def __len__(self):
        return len(self.feats)

    def num_frames(self):
        return np.array([f.shape[0] for f in self.feats])

    def features(self, i):
        return self.feats[i]


@pytest.fixture(scope="module")
def source():
    rng = np.random.default_rng(0)
    lengths = rng.choice([12, 50, 50, 51, 53, 120, 120, 121, 200, 204, 310], size=40)
    return MemorySource([(rng.normal(size=(n, 80)) * 3 + 5).astype(np.float32) for n in lengths])


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("resnet10", base_width=4, embed_dim=32).eval()


@pytest.mark.parametrize("max_crop", [0.0, 0.05, 0.3])
def test_plan_covers_every_utterance_once_within_the_limits(max_crop):
    rng = np.random.default_rng(1)
    frames = rng.integers(5, 400, 500)
    batches = plan_batches(frames, max_batch_frames=2000, max_batch_size=16, max_crop=max_crop, min_frames=20)
    seen = np.concatenate([b.indices for b in batches])
    assert np.array_equal(np.sort(seen), np.arange(500))
    for b in batches:
        eff = np.maximum(frames[b.indices], 20)
        assert b.num_frames == eff.min()
        assert len(b.indices) <= 16 and (len(b.indices) == 1 or len(b.indices) * b.num_frames <= 2000)
        assert np.all(1 - b.num_frames / eff <= max_crop + 1e-12)  # no utterance loses more than max_crop
        if max_crop == 0.0:
            assert np.all(eff == b.num_frames)


def test_bucketed_extraction_equals_one_by_one(source, model):
    one_by_one = extract_embeddings(model, source, CPU, max_batch_size=1, progress=False)
    batched = extract_embeddings(model, source, CPU, max_batch_size=8, progress=False)
    # Measured: max |difference| 2.6e-8 with embeddings up to 0.1 (float summation order).
    np.testing.assert_allclose(batched, one_by_one, atol=1e-6, rtol=1e-5)
    # With cropping the embeddings move, but stay close: measured min cosine 0.953 (the 50-frame utterances losing
    # 1-3 frames), median 1.0 (most lengths are shared exactly) for random features and weights at max_crop 0.05;
    # on real speech with a trained model see docs/benchmarks.md.
    cropped = extract_embeddings(model, source, CPU, max_crop=0.05, progress=False)
    cos = (length_normalise(cropped) * length_normalise(one_by_one)).sum(axis=1)
    assert cos.min() > 0.9 and np.median(cos) > 0.999


def test_short_utterances_are_repeated_to_min_frames(source, model):
    short = MemorySource([source.feats[0][:7]])
    repeated = MemorySource([np.concatenate([source.feats[0][:7]] * 3)[:20]])
    np.testing.assert_allclose(
        extract_embeddings(model, short, CPU, min_frames=20, progress=False),
        extract_embeddings(model, repeated, CPU, min_frames=20, progress=False), atol=1e-6,
    )


class FailingModel(torch.nn.Module):
    """Wraps a model and raises on the n-th call, like a run killed part-way."""

    def __init__(self, inner, fail_at):
        super().__init__()
        self.inner, self.fail_at, self.calls = inner, fail_at, 0

    def forward(self, x):
        self.calls += 1
        if self.calls == self.fail_at:
            raise KeyboardInterrupt("killed")
        return self.inner(x)


def test_interrupted_extraction_resumes_and_matches(source, model, tmp_path):
    reference = extract_embeddings(model, source, CPU, max_batch_size=4, progress=False)
    resume = tmp_path / "partial"
    with pytest.raises(KeyboardInterrupt):
        extract_embeddings(FailingModel(model, 6), source, CPU, max_batch_size=4, resume_dir=resume,
                           fingerprint={"model": "a"}, flush_every=4, progress=False)
    parts = sorted(resume.glob("part_*.npz"))
    assert parts and not list(resume.glob(".*tmp"))  # finished parts kept, nothing half-written
    kept = sum(len(load_embeddings(p)[0]) for p in parts)
    assert 0 < kept < len(source)
    counting = FailingModel(model, fail_at=-1)
    out = extract_embeddings(counting, source, CPU, max_batch_size=4, resume_dir=resume, fingerprint={"model": "a"},
                             flush_every=4, progress=False)
    np.testing.assert_allclose(out, reference, atol=1e-6)
    assert counting.calls < len(plan_batches(source.num_frames(), 12000, 4))  # the kept rows were not redone
    with pytest.raises(ValueError, match="other settings"):
        extract_embeddings(model, source, CPU, resume_dir=resume, fingerprint={"model": "b"}, progress=False)


def test_embedding_file_round_trip_and_speaker_means(tmp_path):
    emb = np.arange(12, dtype=np.float32).reshape(4, 3)
    save_embeddings(tmp_path / "e.npz", ["a", "b", "c", "d"], emb, speakers=["s1", "s2", "s1", "s2"])
    keys, back = load_embeddings(tmp_path / "e.npz")
    assert keys == ["a", "b", "c", "d"] and np.array_equal(back, emb)
    assert list(load_embedding_arrays(tmp_path / "e.npz")["speakers"]) == ["s1", "s2", "s1", "s2"]
    ids, means, counts = speaker_means(emb, ["s1", "s2", "s1", "s2"])
    assert ids == ["s1", "s2"] and counts.tolist() == [2, 2]
    np.testing.assert_allclose(means, [emb[[0, 2]].mean(0), emb[[1, 3]].mean(0)])
    with pytest.raises(ValueError, match="3 keys but 4"):
        save_embeddings(tmp_path / "x.npz", ["a", "b", "c"], emb)
    with pytest.raises(FileNotFoundError, match="embed.py"):
        load_embeddings(tmp_path / "missing.npz")


@pytest.fixture(scope="module")
def wavs(tmp_path_factory):
    d = tmp_path_factory.mktemp("wav")
    rng = np.random.default_rng(3)
    utts = []
    for i, seconds in enumerate([0.8, 1.3, 0.5]):
        path = d / f"spk{i % 2}" / f"{i}.wav"
        path.parent.mkdir(exist_ok=True)
        wave = 0.1 * rng.normal(size=int(16000 * seconds))
        sf.write(path, wave, 16000, subtype="PCM_16")
        utts.append(Utterance(f"spk{i % 2}/{i}.wav", f"spk{i % 2}", str(path), wave.size, 16000))
    return d, utts


def test_audio_source_gives_the_stored_features(wavs, tmp_path, model):
    _, utts = wavs
    store = StoreFeatureSource(FeatureStore(write_feature_store(utts, tmp_path / "fbank", FbankSettings(), progress=False)))
    audio = AudioFeatureSource({u.key: u.path for u in utts})
    assert store.keys == audio.keys
    np.testing.assert_array_equal(store.num_frames(), audio.num_frames())
    for i in range(len(utts)):
        np.testing.assert_allclose(audio.features(i), store.features(i), atol=1e-5)
    # Worker processes get the store by path (no copy of the memory map) and give the same embeddings.
    np.testing.assert_allclose(
        extract_embeddings(model, store, CPU, num_workers=1, progress=False),
        extract_embeddings(model, audio, CPU, progress=False), atol=1e-5,
    )


def test_audio_source_errors(wavs, tmp_path):
    d, utts = wavs
    sf.write(tmp_path / "8k.wav", np.zeros(8000), 8000)
    with pytest.raises(ValueError, match="8k.wav has sample rate 8000"):
        AudioFeatureSource({"x": tmp_path / "8k.wav"}).num_frames()
    sf.write(tmp_path / "tiny.wav", np.zeros(100), 16000)
    with pytest.raises(ValueError, match="shorter than one"):
        AudioFeatureSource({"x": tmp_path / "tiny.wav"}).num_frames()
    src = audio_source_from_list([utts[0].path, "", f"k2 {utts[1].path}"])
    assert src.keys == [utts[0].path, "k2"]
    with pytest.raises(ValueError, match="line 2: key 'k2' appears twice"):
        audio_source_from_list([f"k2 {utts[0].path}", f"k2 {utts[1].path}"])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_extraction_matches_cpu(source, model):
    cpu = extract_embeddings(model, source, CPU, progress=False)
    gpu = extract_embeddings(model, source, torch.device("cuda"), progress=False)
    model.cpu()
    # cuDNN may use TF32 convolutions (about 1e-3 relative error per layer): compare directions, not digits.
    cos = (length_normalise(gpu) * length_normalise(cpu)).sum(axis=1)
    assert gpu.dtype == np.float32 and cos.min() > 0.999
