"""Property tests (hypothesis) of top-k selection and of the stable math.

Already property-tested elsewhere, and not repeated here:

- hashing: ``skmach/_hashing/tests/test_universal.py``
  (``test_buckets_close_to_uniform``: each repetition's buckets against the
  chi-square bound over random draws; ``test_pairwise_collision_rate_close_to_one_over_B``;
  ``test_repetitions_are_independent``);
- metrics: ``skmach/metrics/tests/test_ranking.py::test_metrics_match_reference``
  (hypothesis against a slow reference, bounds) and ``::test_perfect_ranking_scores_one``;
- the XC reader and writer: ``skmach/datasets/tests/test_xc.py::test_dump_load_round_trip``;
- MACH's block-wise class scoring: ``skmach/mach/tests/test_scoring.py``.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from skmach.utils import log_softmax, sigmoid, softmax, topk
from skmach.utils._math import log_sigmoid
from skmach.utils._topk import merge_topk

FAST = settings(max_examples=60, deadline=None)


# ---------------------------------------------------------------- top-k
@st.composite
def score_matrices(draw):
    n_rows = draw(st.integers(0, 6))
    n_cols = draw(st.integers(1, 12))
    # few distinct values -> many ties, including ties across the k-th place
    values = st.one_of(
        st.integers(-3, 3).map(float),
        st.floats(-1e300, 1e300, allow_nan=False, allow_infinity=False),
        st.sampled_from([np.inf, -np.inf, 0.0, -0.0]),
    )
    dtype = draw(st.sampled_from([np.float64, np.float32, np.int64]))
    S = draw(hnp.arrays(np.float64, (n_rows, n_cols), elements=values))
    if dtype is np.int64:
        S = np.nan_to_num(S, posinf=7, neginf=-7).clip(-7, 7).round()
    with np.errstate(over="ignore"):
        S = S.astype(dtype)
    k = draw(st.integers(1, n_cols))
    return S, k


def _reference_topk(S, k):
    """Full stable sort of each row: larger value first, then lower index."""
    idx = np.array([sorted(range(S.shape[1]), key=lambda j: (-S[i, j], j))[:k]
                    for i in range(S.shape[0])], dtype=np.int64).reshape(S.shape[0], k)
    return idx, np.take_along_axis(S, idx, axis=1)


@FAST
@given(score_matrices())
def test_topk_agrees_with_a_full_sort_ties_to_the_lower_index(problem):
    S, k = problem
    idx, val = topk(S, k)
    ref_idx, ref_val = _reference_topk(S, k)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_array_equal(val, ref_val)
    assert idx.dtype == np.int64 and val.dtype == S.dtype


@FAST
@given(score_matrices())
def test_unsorted_topk_selects_the_same_set(problem):
    S, k = problem
    idx, val = topk(S, k, sort=False)
    ref_idx, _ = _reference_topk(S, k)
    np.testing.assert_array_equal(np.sort(idx, axis=1), np.sort(ref_idx, axis=1))
    np.testing.assert_array_equal(val, np.take_along_axis(S, idx, axis=1))


@FAST
@given(score_matrices(), st.data())
def test_blockwise_merge_equals_topk_of_the_whole(problem, data):
    """What the chunked scorers do: keep a running top-k over column blocks."""
    S, k = problem
    cut = data.draw(st.integers(0, S.shape[1]))
    left, right = S[:, :cut], S[:, cut:]
    pieces = []
    for off, block in ((0, left), (cut, right)):
        if block.shape[1]:
            kk = min(k, block.shape[1])
            i, v = topk(block, kk)
            pieces.append((i + off, v))
    i, v = pieces[0]
    for j, w in pieces[1:]:
        i, v = merge_topk(i, v, j, w, k)
    ref_idx, ref_val = _reference_topk(S, k)
    np.testing.assert_array_equal(i[:, :k], ref_idx)
    np.testing.assert_array_equal(v[:, :k], ref_val)


def test_topk_rejects_bad_k_and_shapes():
    with pytest.raises(ValueError, match="k must be in"):
        topk(np.zeros((2, 3)), 4)
    with pytest.raises(ValueError, match="k must be in"):
        topk(np.zeros((2, 3)), 0)
    with pytest.raises(ValueError, match="2-D"):
        topk(np.zeros(3), 1)


# ---------------------------------------------------------- stable math
def _logits(dtype):
    info = np.finfo(dtype)
    return hnp.arrays(
        dtype, st.tuples(st.integers(1, 5), st.integers(1, 8)),
        elements=st.one_of(
            st.floats(float(-info.max), float(info.max), allow_nan=False,
                      allow_infinity=False, width=info.bits),
            st.sampled_from([float(info.max), float(-info.max), 0.0, 1e4, -1e4, 88.0, -104.0,
                             709.0, -745.0]).map(lambda v: float(dtype(v))),
        ),
    )


@FAST
@given(st.sampled_from([np.float32, np.float64]).flatmap(
    lambda dt: st.tuples(st.just(dt), _logits(dt))))
def test_softmax_of_extreme_finite_logits(args):
    dtype, Z = args
    with np.errstate(over="ignore"):  # z - max may overflow to -inf: exp gives 0, correct
        P = softmax(Z, axis=1)
        LP = log_softmax(Z, axis=1)
    assert P.dtype == dtype
    assert np.isfinite(P).all() and (P >= 0).all() and (P <= 1).all()
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=10 * np.finfo(dtype).eps * Z.shape[1])
    # the largest logit keeps the largest probability
    assert (P[np.arange(len(Z)), Z.argmax(axis=1)] == P.max(axis=1)).all()
    assert not np.isnan(LP).any() and (LP <= 0).all()
    # shifting every logit of a row by the same amount changes nothing
    Zs = Z.astype(np.float64)
    small = np.abs(Zs).max() < 1e6
    if small:
        np.testing.assert_allclose(softmax(Zs + 1000.0, axis=1), softmax(Zs, axis=1),
                                   rtol=1e-6, atol=1e-12)


@FAST
@given(hnp.arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(1, 6)),
                  elements=st.floats(-50, 50)))
def test_softmax_matches_the_textbook_formula_where_it_is_safe(Z):
    E = np.exp(Z)
    np.testing.assert_allclose(softmax(Z, axis=1), E / E.sum(axis=1, keepdims=True), rtol=1e-12)
    np.testing.assert_allclose(log_softmax(Z, axis=1), np.log(E / E.sum(axis=1, keepdims=True)),
                               rtol=1e-9, atol=1e-12)


@FAST
@given(st.sampled_from([np.float32, np.float64]).flatmap(
    lambda dt: st.tuples(st.just(dt), _logits(dt))))
def test_sigmoid_of_extreme_finite_logits(args):
    dtype, Z = args
    s = sigmoid(Z)
    assert s.dtype == dtype
    assert np.isfinite(s).all() and (s >= 0).all() and (s <= 1).all()
    # symmetry, exact where the result is representable
    np.testing.assert_allclose(s + sigmoid(-Z), 1.0, rtol=4 * np.finfo(dtype).eps)
    ls = log_sigmoid(Z.astype(np.float64))
    assert not np.isnan(ls).any() and (ls <= 0).all()
    # sigmoid is monotone
    flat = np.sort(Z.ravel())
    assert (np.diff(sigmoid(flat)) >= 0).all()


def test_sigmoid_and_softmax_limits_exactly():
    z = np.array([-np.inf, -1e308, -800.0, 0.0, 800.0, 1e308, np.inf])
    np.testing.assert_array_equal(sigmoid(z), [0, 0, 0, 0.5, 1, 1, 1])
    z32 = np.array([-3e38, -104.0, 0.0, 104.0, 3e38], dtype=np.float32)
    s32 = sigmoid(z32)
    assert s32.dtype == np.float32
    np.testing.assert_array_equal(s32[[0, 2, 3, 4]], np.float32([0, 0.5, 1, 1]))
    assert 0 <= s32[1] < 1e-44
    np.testing.assert_array_equal(log_sigmoid(np.array([-1e308, 0.0, 1e308])),
                                  [-1e308, -np.log(2), 0.0])
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(softmax(np.array([[1e308, -1e308]])), [[1.0, 0.0]])
        np.testing.assert_array_equal(softmax(np.float32([[3e38, -3e38, 0]])), [[1, 0, 0]])
    # -inf marks "not scored" (LSH output_scoring="lsh"): probability 0
    np.testing.assert_array_equal(softmax(np.array([[-np.inf, 0.0, 0.0]])), [[0, 0.5, 0.5]])
    # all-zero logits (e.g. an all-zero input row through a bias-free model): uniform
    np.testing.assert_array_equal(softmax(np.zeros((2, 4), np.float32)), np.full((2, 4), 0.25))
    np.testing.assert_array_equal(sigmoid(np.zeros(3, np.float32)), np.full(3, 0.5))


def test_softmax_of_infinite_rows():
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(softmax(np.array([[np.inf, 0.0]])), [[1.0, 0.0]])
        P = softmax(np.array([[-np.inf, -np.inf]]))
    np.testing.assert_array_equal(P, [[0.5, 0.5]])
