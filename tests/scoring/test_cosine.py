import numpy as np
import pytest

from sv_toolkit.data.manifests import Trial
from sv_toolkit.scoring import match_scores_to_trials, read_scores, score_trials, trial_indices, write_scores


def test_cosine_scores_with_mean_subtraction():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(5, 8)) + 3.0
    mean = emb.mean(axis=0)
    trials = [Trial(1, "a", "b"), Trial(0, "c", "e"), Trial(1, "d", "d")]
    scores = score_trials(list("abcde"), emb, trials, mean)
    x = emb - mean
    cos = lambda i, j: x[i] @ x[j] / np.linalg.norm(x[i]) / np.linalg.norm(x[j])  # noqa: E731
    np.testing.assert_allclose(scores, [cos(0, 1), cos(2, 4), 1.0], atol=1e-12)
    with pytest.raises(ValueError, match="does not match"):
        score_trials(list("abcde"), emb, trials, mean[:3])


def test_unknown_trial_key_is_named():
    with pytest.raises(KeyError, match="lists/o.txt: trial 2 names utterance 'zz'"):
        trial_indices(["a", "b"], [Trial(1, "a", "b"), Trial(0, "a", "zz")], source="lists/o.txt")


def test_score_file_round_trip_and_matching(tmp_path):
    trials = [Trial(1, "a", "b"), Trial(0, "a", "c")]
    write_scores(tmp_path / "s.scores", trials, np.array([0.5, -0.25]))
    sf = read_scores(tmp_path / "s.scores")
    assert sf.enroll == ["a", "a"] and sf.test == ["b", "c"] and sf.labels.tolist() == [1, 0]
    np.testing.assert_allclose(sf.scores, [0.5, -0.25])
    scores, labels = match_scores_to_trials(sf, trials[::-1])
    assert scores.tolist() == [-0.25, 0.5] and labels.tolist() == [0, 1]
    with pytest.raises(KeyError, match=r"trial 1 \(a d\) has no score"):
        match_scores_to_trials(sf, [Trial(1, "a", "d")])
    with pytest.raises(ValueError, match="has label 1 but"):
        match_scores_to_trials(sf, [Trial(0, "a", "b")])


@pytest.mark.parametrize(
    "text,match",
    [
        ("a b 0.1 1\na c\n", ":2: expected"),
        ("a b x 1\n", "score 'x' is not a number"),
        ("a b 0.1 2\n", "label '2' must be"),
        ("\n", "is empty"),
    ],
)
def test_malformed_score_files_name_the_line(tmp_path, text, match):
    (tmp_path / "bad.scores").write_text(text)
    with pytest.raises(ValueError, match=match):
        read_scores(tmp_path / "bad.scores")
