import numpy as np
import pytest

from skmach._hashing import UniversalHashFamily
from skmach.mach._scoring import (
    candidate_classes,
    class_scores,
    topk_classes,
    unbiased,
)


def _slow_scores(P, H, aggregation):
    n, R, _ = P.shape
    K = H.shape[1]
    out = np.zeros((n, K))
    for i in range(n):
        for c in range(K):
            vals = [P[i, r, H[r, c]] for r in range(R)]
            if aggregation == "mean":
                out[i, c] = np.mean(vals)
            elif aggregation == "logmean":
                out[i, c] = np.exp(np.mean(np.log(np.maximum(vals, 1e-12))))
            else:
                out[i, c] = np.min(vals)
    return out


@pytest.fixture
def problem():
    rng = np.random.default_rng(0)
    K, B, R, n = 37, 5, 4, 6
    fam = UniversalHashFamily(K, B, R, np.random.default_rng(1))
    P = rng.dirichlet(np.ones(B), size=(n, R)).astype(np.float32)
    return P, fam, K


@pytest.mark.parametrize("aggregation", ["mean", "logmean", "min"])
def test_class_scores_match_slow_reference(problem, aggregation):
    P, fam, K = problem
    got = class_scores(P, fam, np.arange(K), aggregation)
    want = _slow_scores(P, fam.buckets(), aggregation)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_unbiased_estimator_formula(problem):
    P, fam, K = problem
    B = fam.n_buckets
    s = class_scores(P, fam, np.arange(K), "mean").astype(np.float64)
    want = B / (B - 1) * (s - 1 / B)
    np.testing.assert_allclose(unbiased(s.copy(), B), want)


@pytest.mark.parametrize("aggregation", ["mean", "logmean", "min"])
@pytest.mark.parametrize("wm", [256, 0.0001])
def test_blockwise_topk_equals_full_sort(problem, aggregation, wm):
    P, fam, K = problem
    full = class_scores(P, fam, np.arange(K), aggregation)
    idx, val = topk_classes(P, fam, K, 7, aggregation, working_memory_mb=wm)
    for i in range(P.shape[0]):
        order = np.lexsort((np.arange(K), -full[i]))[:7]
        np.testing.assert_array_equal(idx[i], order)
        np.testing.assert_allclose(val[i], full[i, order], rtol=1e-6)


def test_candidates_with_all_buckets_are_exact(problem):
    P, fam, K = problem
    inv = [fam.inverted_index(r) for r in range(fam.n_repetitions)]
    cand = candidate_classes(P, inv, fam.n_buckets)
    assert np.all(np.diff(cand[0]) == K)
    a = topk_classes(P, fam, K, 5, "mean", candidates=cand)
    b = topk_classes(P, fam, K, 5, "mean")
    np.testing.assert_array_equal(a[0], b[0])


def test_candidates_come_from_top_buckets(problem):
    P, fam, K = problem
    inv = [fam.inverted_index(r) for r in range(fam.n_repetitions)]
    indptr, flat = candidate_classes(P, inv, 1)
    H = fam.buckets()
    for i in range(P.shape[0]):
        c = flat[indptr[i]:indptr[i + 1]]
        best = P[i].argmax(axis=1)
        expect = {k for k in range(K) if any(H[r, k] == best[r] for r in range(len(best)))}
        assert set(c.tolist()) == expect


def test_candidate_topk_matches_exact_scores_of_candidates(problem):
    P, fam, K = problem
    inv = [fam.inverted_index(r) for r in range(fam.n_repetitions)]
    indptr, flat = candidate_classes(P, inv, 2)
    idx, val = topk_classes(P, fam, K, 3, "mean", candidates=(indptr, flat))
    full = class_scores(P, fam, np.arange(K), "mean")
    for i in range(P.shape[0]):
        c = flat[indptr[i]:indptr[i + 1]]
        order = c[np.lexsort((c, -full[i, c]))][:3]
        np.testing.assert_array_equal(idx[i], order)


# ------------------------------------------------ compiled dispatch
from skmach._hashing import PermutationFamily  # noqa: E402
from skmach._kernels._mach_scoring import stack_inverted  # noqa: E402


@pytest.mark.parametrize("aggregation", ["mean", "logmean", "min"])
@pytest.mark.parametrize("perm", [False, True])
def test_compiled_topk_equals_numpy_reference(problem, aggregation, perm):
    P, fam, K = problem
    if perm:
        fam = PermutationFamily(K, P.shape[1], np.random.default_rng(2))
        P = np.random.default_rng(3).dirichlet(np.ones(K), size=(6, P.shape[1])).astype(np.float32)
    a_idx, a_val = topk_classes(P, fam, K, 7, aggregation)
    b_idx, b_val = topk_classes(P, fam, K, 7, aggregation, method="numpy")
    np.testing.assert_array_equal(a_idx, b_idx)
    np.testing.assert_array_equal(a_val, b_val)
    full = class_scores(P, fam, np.arange(K), aggregation)  # reported scores
    np.testing.assert_allclose(a_val, np.take_along_axis(full, a_idx, axis=1), rtol=1e-6)


@pytest.mark.parametrize("aggregation", ["mean", "logmean", "min"])
@pytest.mark.parametrize("c", [1, 2, 3])
def test_exact_candidate_scoring_equals_exact(problem, aggregation, c):
    P, fam, K = problem
    inv = [fam.inverted_index(r) for r in range(fam.n_repetitions)]
    for inverted in (inv, stack_inverted(inv)):
        idx, val, fb = topk_classes(P, fam, K, 4, aggregation, n_candidate_buckets=c,
                                    inverted=inverted, return_fallback=True)
        ref_idx, ref_val = topk_classes(P, fam, K, 4, aggregation)
        np.testing.assert_array_equal(idx, ref_idx)
        np.testing.assert_array_equal(val, ref_val)
        assert fb.shape == (P.shape[0],) and fb.dtype == bool


def test_threads_do_not_change_the_result(problem):
    P, fam, K = problem
    P = np.repeat(P, 50, axis=0)
    inv = [fam.inverted_index(r) for r in range(fam.n_repetitions)]
    one = topk_classes(P, fam, K, 5, "logmean", n_jobs=1)
    two = topk_classes(P, fam, K, 5, "logmean", n_jobs=2)
    cand = topk_classes(P, fam, K, 5, "logmean", n_jobs=2, n_candidate_buckets=2, inverted=inv)
    np.testing.assert_array_equal(one[0], two[0])
    np.testing.assert_array_equal(one[0], cand[0])


def test_no_samples(problem):
    P, fam, K = problem
    idx, val = topk_classes(P[:0], fam, K, 3)
    assert idx.shape == (0, 3) and val.shape == (0, 3)


def test_topk_classes_rejects_bad_input(problem):
    P, fam, K = problem
    with pytest.raises(ValueError, match="k must be"):
        topk_classes(P, fam, K, K + 1)
    with pytest.raises(TypeError, match="k must be an integer"):
        topk_classes(P, fam, K, True)
    with pytest.raises(ValueError, match="aggregation"):
        topk_classes(P, fam, K, 2, "median")
    with pytest.raises(ValueError, match="inverted"):
        topk_classes(P, fam, K, 2, n_candidate_buckets=2)
    with pytest.raises(ValueError, match="n_classes"):
        topk_classes(P, fam, K + 1, 2)
    with pytest.raises(ValueError, match="repetitions"):
        topk_classes(P[:, :2], fam, K, 2)
    bad = P.copy()
    bad[0, 0, 0] = np.nan
    for method in ("auto", "numpy"):
        with pytest.raises(ValueError, match="NaN"):
            topk_classes(bad, fam, K, 2, method=method)


@pytest.mark.parametrize("aggregation", ["mean", "logmean", "min"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_class_scores_equal_numpy(problem, aggregation, dtype):
    from skmach.mach._scoring import _class_scores_numpy

    P, fam, K = problem
    P = P.astype(dtype)
    classes = np.array([36, 0, 5, 5, 17])  # any order, repeats allowed
    got = class_scores(P, fam, classes, aggregation)
    want = _class_scores_numpy(P, fam, classes, aggregation)
    assert got.dtype == want.dtype == dtype
    np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="class indices"):
        class_scores(P, fam, np.array([K]), aggregation)
