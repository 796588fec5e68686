import numpy as np
import pytest

from sv_toolkit.scoring import cohort_statistics, length_normalise, normalise_scores


def naive_stats(emb, cohort, top_n, exclude=None):
    """The REFERENCE definition written out: full sort per row, population standard deviation."""
    mu, sd = [], []
    for i, x in enumerate(emb):
        s = cohort @ x
        if exclude is not None and exclude[i] >= 0:
            s = np.delete(s, exclude[i])
        top = np.sort(s)[::-1][: top_n if top_n is not None else s.size]
        mu.append(top.mean())
        sd.append(top.std())
    return np.array(mu), np.array(sd)


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return length_normalise(rng.normal(size=(300, 32))), length_normalise(rng.normal(size=(120, 32)))


@pytest.mark.parametrize("top_n", [5, 50, None])
@pytest.mark.parametrize("block_size", [1, 7, 1024])
def test_cohort_statistics_match_the_naive_definition(data, top_n, block_size):
    emb, cohort = data
    mu, sd = cohort_statistics(emb, cohort, top_n, block_size=block_size)
    ref_mu, ref_sd = naive_stats(emb, cohort, top_n)
    np.testing.assert_allclose(mu, ref_mu, atol=1e-12)
    np.testing.assert_allclose(sd, ref_sd, atol=1e-12)


def test_excluded_cohort_row_is_left_out(data):
    emb, cohort = data
    exclude = np.arange(emb.shape[0]) % cohort.shape[0]
    exclude[::5] = -1  # some rows exclude nothing
    for top_n in (10, None):
        mu, sd = cohort_statistics(emb, cohort, top_n, block_size=64, exclude=exclude)
        ref_mu, ref_sd = naive_stats(emb, cohort, top_n, exclude)
        np.testing.assert_allclose(mu, ref_mu, atol=1e-12)
        np.testing.assert_allclose(sd, ref_sd, atol=1e-12)


def test_normalised_scores_follow_the_formula(data):
    emb, cohort = data
    rng = np.random.default_rng(1)
    enroll, test = rng.integers(0, 300, 500), rng.integers(0, 300, 500)
    raw = np.einsum("ij,ij->i", emb[enroll], emb[test])
    out = normalise_scores(raw, emb, enroll, test, cohort, top_n=20, block_size=16)
    mu, sd = naive_stats(emb, cohort, 20)
    expected = 0.5 * ((raw - mu[enroll]) / sd[enroll] + (raw - mu[test]) / sd[test])
    np.testing.assert_allclose(out, expected, atol=1e-10)


def test_top_n_beyond_the_cohort_and_bad_shapes_are_errors(data):
    emb, cohort = data
    with pytest.raises(ValueError, match="top_n=121"):
        cohort_statistics(emb, cohort, 121)
    with pytest.raises(ValueError, match="one left out per row"):
        cohort_statistics(emb, cohort, 120, exclude=np.zeros(300, dtype=int))
    with pytest.raises(ValueError, match="must be"):
        cohort_statistics(emb[:, :5], cohort, 10)
