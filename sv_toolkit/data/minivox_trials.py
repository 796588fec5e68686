"""Trial lists for minivox in the VoxCeleb format (``label enroll test``, label 1 = target).

Each list is balanced (half targets, rounded down). Target pairs prefer two different sessions
of a speaker; non-target pairs are any two test speakers, or, for an H-like list, two speakers of
the same gender and language. No self pairs and no pair twice (in either order).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["TrialRequest", "TrialUtterance", "plan_trials", "write_trials"]


@dataclass(frozen=True)
class TrialRequest:
    name: str  # list name, e.g. "minivox_O" (file trials/<name>.txt)
    key: str  # the argument that set ``count``, named in errors (e.g. "trials_o")
    count: int
    same_group_nontargets: bool  # H-like: impostors share gender and language


@dataclass(frozen=True)
class TrialUtterance:
    path: str  # relative to wav/, e.g. "syn00041/sess0000082/00003.wav"
    speaker: str
    session: str
    group: str  # e.g. "m-de": gender and language


def _pair_pools(utts: list[TrialUtterance]) -> dict[str, np.ndarray]:
    i, j = np.triu_indices(len(utts), 1)
    spk = np.unique([u.speaker for u in utts], return_inverse=True)[1]
    sess = np.unique([u.session for u in utts], return_inverse=True)[1]
    grp = np.unique([u.group for u in utts], return_inverse=True)[1]
    same_spk = spk[i] == spk[j]
    same_sess = sess[i] == sess[j]
    return {
        "i": i, "j": j,
        "target_cross": np.flatnonzero(same_spk & ~same_sess),
        "target_same": np.flatnonzero(same_spk & same_sess),
        "nontarget": np.flatnonzero(~same_spk),
        "nontarget_group": np.flatnonzero(~same_spk & (grp[i] == grp[j])),
    }


def plan_trials(seed: int, utts: list[TrialUtterance], requests: list[TrialRequest]
                ) -> dict[str, list[tuple[int, str, str]]]:
    """Draw every requested list; ValueError naming the request's key when it asks for too many."""
    pools = _pair_pools(utts)
    num_speakers = len({u.speaker for u in utts})
    lists: dict[str, list[tuple[int, str, str]]] = {}
    for index, req in enumerate(requests):
        num_target, num_nontarget = req.count // 2, req.count - req.count // 2
        cross, same = pools["target_cross"], pools["target_same"]
        impostors = pools["nontarget_group" if req.same_group_nontargets else "nontarget"]
        if req.count < 2 or num_target > len(cross) + len(same) or num_nontarget > len(impostors):
            kind = " of the same gender and language" if req.same_group_nontargets else ""
            raise ValueError(
                f"{req.key}={req.count}: a balanced list needs {num_target} target and {num_nontarget} "
                f"non-target pairs (at least 1 each), but {num_speakers} test speakers x "
                f"{len(utts) // max(num_speakers, 1)} utterances allow {len(cross) + len(same)} target and "
                f"{len(impostors)} non-target pairs{kind}; lower {req.key} or add test speakers/utterances")
        rng = np.random.default_rng([seed, 5, index])
        chosen = rng.choice(cross, min(num_target, len(cross)), replace=False)
        if num_target > len(cross):
            chosen = np.concatenate([chosen, rng.choice(same, num_target - len(cross), replace=False)])
        pairs = np.concatenate([chosen, rng.choice(impostors, num_nontarget, replace=False)])
        labels = np.concatenate([np.ones(num_target, dtype=int), np.zeros(num_nontarget, dtype=int)])
        swap = rng.integers(0, 2, size=len(pairs)).astype(bool)
        first = np.where(swap, pools["j"][pairs], pools["i"][pairs])
        second = np.where(swap, pools["i"][pairs], pools["j"][pairs])
        order = rng.permutation(len(pairs))
        lists[req.name] = [(int(labels[k]), utts[first[k]].path, utts[second[k]].path) for k in order]
    return lists


def write_trials(trial_dir: Path, lists: dict[str, list[tuple[int, str, str]]]) -> dict[str, Path]:
    """Write ``<trial_dir>/<name>.txt`` for every list; returns name -> path."""
    trial_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, trials in lists.items():
        path = trial_dir / f"{name}.txt"
        path.write_text("".join(f"{label} {enroll} {test}\n" for label, enroll, test in trials), encoding="utf-8")
        paths[name] = path
    return paths
