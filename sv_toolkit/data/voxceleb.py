"""VoxCeleb facts: the cleaned VoxCeleb1 trial lists and their published sizes (REFERENCE.md section 4)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from sv_toolkit.data.manifests import Trial


@dataclass(frozen=True)
class TrialProtocol:
    name: str
    file: str
    trials: int
    target: int
    nontarget: int


# Cleaned lists (label enroll test, label 1 = target), keys <id1xxxx>/<video>/<nnnnn>.wav relative to vox1 wav/.
VOX1_PROTOCOLS = {
    p.file: p
    for p in (
        TrialProtocol("Vox1-O cleaned", "veri_test2.txt", 37_611, 18_802, 18_809),
        TrialProtocol("Vox1-E cleaned", "list_test_all2.txt", 579_818, 289_921, 289_897),
        TrialProtocol("Vox1-H cleaned", "list_test_hard2.txt", 550_894, 275_488, 275_406),
    )
}


def check_trial_counts(list_name: str, path: str | Path, trials: Sequence[Trial]) -> None:
    """Raise ValueError when a list named like a VoxCeleb1 protocol file does not have its published size.

    Lists with other file names (subsets, other corpora) are not checked.
    """
    protocol = VOX1_PROTOCOLS.get(Path(path).name)
    if protocol is None:
        return
    target = sum(t.label for t in trials)
    found = (len(trials), target, len(trials) - target)
    expected = (protocol.trials, protocol.target, protocol.nontarget)
    if found != expected:
        raise ValueError(
            f"trial list {list_name} ({path}) has {found[0]:,} trials ({found[1]:,} target / {found[2]:,} nontarget), "
            f"but {protocol.name} ({protocol.file}) has {expected[0]:,} ({expected[1]:,} / {expected[2]:,}). "
            "The file is truncated or another version (the uncleaned lists lack the '2'): download the cleaned "
            "list again, or set data.check_trial_counts=false to score a subset on purpose."
        )
