import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skmach._hashing import PermutationFamily, UniversalHashFamily
from skmach._hashing._universal import MAX_CLASSES


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), B=st.integers(2, 64))
def test_buckets_close_to_uniform(seed, B):
    """Each repetition spreads the classes evenly over its buckets.

    A uniform random allocation of K classes gives a chi-square statistic of
    mean B - 1. The guarantee is over the draw of the hash function, so the
    test looks at 40 draws: typical draws must be at least that even, and
    almost all of them within the chi-square 99.9% bound (an unlucky
    multiplier near a simple fraction makes the odd draw uneven).
    """
    K = 20_000
    rng = np.random.default_rng(seed)
    chi2 = []
    for _ in range(40):
        h = UniversalHashFamily(K, B, 1, rng, distinct=False)
        counts = np.bincount(h.buckets()[0], minlength=B)
        expected = K / B
        chi2.append(((counts - expected) ** 2 / expected).sum())
    bound = (B - 1) + 5 * np.sqrt(2 * (B - 1)) + 10  # beyond the 99.9% quantile
    assert np.median(chi2) < B - 1
    assert np.mean(np.array(chi2) > bound) <= 0.1


def test_pairwise_collision_rate_close_to_one_over_B():
    B, K = 16, 400
    rates = []
    for seed in range(50):
        h = UniversalHashFamily(K, B, 1, np.random.default_rng(seed), distinct=False)
        b = h.buckets()[0]
        same = (b[:, None] == b[None, :]).sum() - K
        rates.append(same / (K * (K - 1)))
    assert abs(np.mean(rates) - 1 / B) < 0.15 / B


def test_repetitions_are_independent():
    h = UniversalHashFamily(5000, 8, 2, np.random.default_rng(3), distinct=False)
    b0, b1 = h.buckets()
    joint = np.histogram2d(b0, b1, bins=8)[0] / 5000
    np.testing.assert_allclose(joint, 1 / 64, atol=0.01)


def test_redraw_makes_bucket_vectors_distinct():
    # 8**5 = 32768: about 0.6 colliding pairs expected per draw, so a redraw
    # is needed now and then and a distinct draw comes quickly.
    h = UniversalHashFamily(200, 8, 5, np.random.default_rng(0))
    vecs = {tuple(col) for col in h.buckets().T.tolist()}
    assert h.n_indistinct_ == 0 and len(vecs) == 200


def test_impossible_distinctness_keeps_one_draw_without_warning(recwarn):
    h = UniversalHashFamily(100, 2, 3, np.random.default_rng(0))  # 2**3 < 100
    assert h.n_indistinct_ > 0
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_crowded_draw_warns():
    with pytest.warns(RuntimeWarning, match="share their bucket"):
        UniversalHashFamily(200, 4, 5, np.random.default_rng(0))  # ~20 pairs per draw


def test_subset_and_single_repetition_agree():
    h = UniversalHashFamily(1000, 32, 6, np.random.default_rng(0))
    c = np.arange(1000)
    np.testing.assert_array_equal(h.subset(2, 5)(c), h(c)[2:5])
    np.testing.assert_array_equal(h(c, rep=4), h(c)[4])


def test_class_indices_near_the_limit():
    h = UniversalHashFamily(MAX_CLASSES, 1024, 2, np.random.default_rng(0), distinct=False)
    top = np.arange(MAX_CLASSES - 100_000, MAX_CLASSES)
    b = h(top)
    assert b.max() < 1024 and b.min() >= 0
    # wrapping 64-bit products stay uniform at the top of the range too
    counts = np.bincount(b[0], minlength=1024)
    assert counts.min() > 0.5 * counts.mean() and counts.max() < 1.5 * counts.mean()
    with pytest.raises(ValueError, match="class indices"):
        h(np.array([MAX_CLASSES]))
    with pytest.raises(ValueError, match="n_classes"):
        UniversalHashFamily(MAX_CLASSES + 1, 4, 2, np.random.default_rng(0))
    with pytest.raises(ValueError, match="n_buckets"):
        UniversalHashFamily(10, 1, 2, np.random.default_rng(0))


def test_inverted_index_lists_each_class_once():
    h = UniversalHashFamily(300, 7, 2, np.random.default_rng(0))
    indptr, cls = h.inverted_index(1)
    assert sorted(cls.tolist()) == list(range(300))
    b = h.buckets()[1]
    for bucket in range(7):
        assert set(cls[indptr[bucket]:indptr[bucket + 1]].tolist()) == set(np.flatnonzero(b == bucket))


def test_permutation_family_is_a_bijection():
    h = PermutationFamily(6, 3, np.random.default_rng(0))
    for r in range(3):
        assert sorted(h.buckets()[r].tolist()) == list(range(6))


def test_compiled_twin_matches_numpy_hash():
    from skmach._hashing._universal import (
        mas_bucket,
        multiply_add_shift,
        multiply_add_shift_compiled,
    )

    rng = np.random.default_rng(0)
    a = rng.integers(0, 2**64, size=6, dtype=np.uint64, endpoint=False)
    b = rng.integers(0, 2**64, size=6, dtype=np.uint64, endpoint=False)
    a[0], b[0] = np.uint64(2**64 - 1), np.uint64(2**64 - 1)  # maximal wrap-around
    c = np.concatenate([np.arange(500), MAX_CLASSES - 1 - np.arange(500),
                        rng.integers(0, MAX_CLASSES, size=500)])
    for B in (2, 3, 1000, 4096, 2**31):
        want = multiply_add_shift(c.astype(np.uint64), a[:, None], b[:, None], B)
        np.testing.assert_array_equal(multiply_add_shift_compiled(c, a, b, B), want)
        assert int(mas_bucket(np.uint64(c[-1]), a[1], b[1], np.uint64(B))) == want[1, -1]
    fam = UniversalHashFamily(1000, 37, 6, rng, distinct=False)
    np.testing.assert_array_equal(
        multiply_add_shift_compiled(np.arange(1000), fam.a, fam.b, 37), fam.buckets())


def test_compiled_twin_rejects_bad_input():
    from skmach._hashing._universal import multiply_add_shift_compiled

    a = np.ones(2, dtype=np.uint64)
    with pytest.raises(ValueError, match="class indices"):
        multiply_add_shift_compiled(np.array([-1]), a, a, 8)
    with pytest.raises(ValueError, match="class indices"):
        multiply_add_shift_compiled(np.array([MAX_CLASSES]), a, a, 8)
    with pytest.raises(ValueError, match="n_buckets"):
        multiply_add_shift_compiled(np.arange(3), a, a, 0)
    with pytest.raises(ValueError, match="same length"):
        multiply_add_shift_compiled(np.arange(3), a, a[:1], 8)
