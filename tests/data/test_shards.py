"""Tar shards: writing (resumable, byte-identical), the epoch plan, and exactly-once loading over ranks x workers."""
from __future__ import annotations

import hashlib
import io
import itertools
import tarfile
from collections import Counter

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from fake_corpora import write_wav
from sv_toolkit.data.chunking import AudioChunker, FeatureChunker
from sv_toolkit.data.manifests import Utterance, write_utterances
from sv_toolkit.data.shard_dataset import ShardChunkDataset, plan_epoch
from sv_toolkit.data.shards import read_shard_list, write_shards
from sv_toolkit.data.audio import read_audio
from sv_toolkit.features import FbankSettings, compute_fbank


def _corpus(root, n: int, seconds: float = 0.3):
    """n utterances, each of its own speaker (so that a label names the utterance)."""
    utts = []
    for i in range(n):
        key = f"spk{i:04d}/vid/{i:05d}.wav"
        path = write_wav(root / "wav" / key, seconds + 0.01 * (i % 5), seed=i)
        utts.append(Utterance(key, key.split("/")[0], str(path), int(round((seconds + 0.01 * (i % 5)) * 16000)),
                              16000))
    write_utterances(root / "train.tsv", utts)
    return root / "train.tsv", {u.speaker: i for i, u in enumerate(utts)}


def _digest(folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("shard_*.tar"))}


def test_write_shards_packs_every_utterance_once_and_resumes_byte_identically(tmp_path):
    manifest, speakers = _corpus(tmp_path, 23)
    out = tmp_path / "shards"
    summary = write_shards(manifest, out, shard_size=5, seed=3, num_workers=2, progress=False)
    assert summary["shards"] == 5 and summary["utterances"] == 23
    shards = read_shard_list(out)
    assert shards.counts.tolist() == [5, 5, 5, 5, 3] and shards.content == "audio" and shards.sample_rate == 16000
    names = [m.name for p in shards.paths for m in tarfile.open(p)]
    assert sorted(names) == sorted(f"spk{i:04d}/vid/{i:05d}.wav" for i in range(23))
    assert names != sorted(names)  # shuffled before packing, so shards mix speakers
    first = _digest(out)
    (out / "shard_000002.tar").unlink()
    write_shards(manifest, out, shard_size=5, seed=3, num_workers=1, progress=False)
    assert _digest(out) == first
    write_shards(manifest, out, shard_size=4, seed=3, num_workers=1, progress=False)  # other settings: redone
    assert read_shard_list(out).counts.tolist() == [4, 4, 4, 4, 4, 3]


def test_fbank_shards_hold_dither_free_fbank(tmp_path):
    manifest, _ = _corpus(tmp_path, 4)
    write_shards(manifest, tmp_path / "fb", 10, 0, content="fbank", fbank=FbankSettings(), progress=False)
    shards = read_shard_list(tmp_path / "fb")
    assert shards.content == "fbank" and shards.num_mel_bins == 80
    with tarfile.open(shards.paths[0]) as tar:
        m = next(iter(tar))
        arr = np.load(io.BytesIO(tar.extractfile(m).read()))
    assert m.name.endswith(".wav.npy") and arr.dtype == np.float32
    wave, _ = read_audio(tmp_path / "wav" / m.name[: -len(".npy")])
    np.testing.assert_array_equal(arr, compute_fbank(wave, 16000).numpy())


@pytest.mark.parametrize("world_size,workers,batch,repeats",
                         list(itertools.product([1, 2, 3], [1, 2, 3], [1, 4], [1, 2])))
def test_epoch_plan_covers_each_sample_at_most_once_with_equal_steps(world_size, workers, batch, repeats):
    counts = np.array([7, 3, 9, 1, 5, 8])  # 33 samples in uneven shards
    total = counts.sum() * repeats
    seen = Counter()
    steps = set()
    for rank in range(world_size):
        plan = plan_epoch(counts, epoch=2, seed=1, rank=rank, world_size=world_size, num_workers=workers,
                          batch_size=batch, repeats=repeats)
        steps.add(sum(b for _, b in plan))
        for segs, batches in plan:
            assert sum(s.stop - s.first for s in segs) == batches * batch
            for s in segs:
                for m in range(s.first, s.stop):
                    seen[(s.position + m - s.first)] += 1
    assert len(steps) == 1  # every rank runs the same number of steps
    (n_steps,) = steps
    assert n_steps == (total // world_size) // batch
    assert max(seen.values()) == 1  # no position twice
    assert total - len(seen) < world_size * (batch + 1)  # leftover: less than a batch (+1) per rank


def _loader_labels(dataset, workers: int) -> list[list[int]]:
    loader = DataLoader(dataset, batch_size=dataset.batch_size, num_workers=workers, drop_last=True)
    assert len(loader) == dataset.steps_per_epoch - dataset.start_step
    return [labels.tolist() for _, labels in loader]


@pytest.fixture(scope="module")
def shard_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    manifest, speakers = _corpus(root, 40)
    write_shards(manifest, root / "shards", shard_size=7, seed=0, progress=False)  # 5 x 7 + 5
    return read_shard_list(root / "shards"), speakers


def _datasets(shards, speakers, world_size: int, batch: int, buffer: int = 8):
    chunker = AudioChunker(20, FbankSettings(), 1.0, len(speakers))
    return [ShardChunkDataset(shards, speakers, chunker, batch, rank, world_size, seed=5, shuffle_buffer=buffer)
            for rank in range(world_size)]


def test_two_ranks_two_workers_see_every_utterance_exactly_once_per_epoch(shard_corpus):
    shards, speakers = shard_corpus
    ranks = _datasets(shards, speakers, world_size=2, batch=4)  # 40 = 2 ranks x 5 steps x 4: nothing left over
    orders = []
    for epoch in (0, 1):
        labels = []
        for ds in ranks:
            ds.set_epoch(epoch)
            batches = _loader_labels(ds, workers=2)
            assert len(batches) == ds.steps_per_epoch == 5
            labels += [x for b in batches for x in b]
        assert sorted(labels) == list(range(40))  # each utterance (its own speaker) exactly once
        orders.append(labels)
    assert orders[0] != orders[1]  # shard order and buffer reshuffled per epoch


def test_uneven_split_gives_equal_steps_and_no_repeats(shard_corpus):
    shards, speakers = shard_corpus
    ranks = _datasets(shards, speakers, world_size=2, batch=3)  # 20 per rank -> 6 steps, 2 left over per rank
    labels = []
    for ds in ranks:
        batches = _loader_labels(ds, workers=2)
        assert len(batches) == 6
        labels += [x for b in batches for x in b]
    assert len(labels) == len(set(labels)) == 36


def test_resume_mid_epoch_gives_the_remaining_batches(shard_corpus):
    shards, speakers = shard_corpus
    (ds,) = _datasets(shards, speakers, world_size=1, batch=4)  # 10 steps over 2 workers
    ds.set_epoch(3)
    full = _loader_labels(ds, workers=2)
    feats_full = [f for f, _ in DataLoader(ds, batch_size=4, num_workers=2, drop_last=True)]
    ds.set_epoch(3, start_step=3)
    assert _loader_labels(ds, workers=2) == full[3:]
    feats_tail = [f for f, _ in DataLoader(ds, batch_size=4, num_workers=2, drop_last=True)]
    torch.testing.assert_close(feats_tail, feats_full[3:])  # same chunks, same dither: seeds follow the sample


def test_feature_chunker_needs_fbank_shards(shard_corpus):
    shards, speakers = shard_corpus
    with pytest.raises(ValueError, match="hold audio, but this training set-up needs fbank"):
        ShardChunkDataset(shards, speakers, FeatureChunker(20), 4)
    with pytest.raises(ValueError, match="no full batch of 64 on each of 2 ranks"):
        _datasets(shards, speakers, world_size=2, batch=64)
