import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from skmach.metrics import ndcg_at_k, precision_at_k, propensity_scores, psp_at_k


# ---------------------------------------------------------------------------
# Slow, plain reference implementations
# ---------------------------------------------------------------------------


def ref_ranking(scores_row, k):
    """Indices of the k best scores, ties by lower index (plain sort)."""
    order = sorted(range(len(scores_row)), key=lambda j: (-scores_row[j], j))
    return order[:k]


def ref_precision(Y, ranked, k):
    total = 0.0
    for i in range(len(Y)):
        true = {j for j in range(len(Y[i])) if Y[i][j]}
        hits = sum(1 for l in list(ranked[i])[:k] if l >= 0 and l in true)
        total += hits / k
    return total / len(Y)


def ref_ndcg(Y, ranked, k):
    total = 0.0
    for i in range(len(Y)):
        true = {j for j in range(len(Y[i])) if Y[i][j]}
        dcg = 0.0
        for pos, l in enumerate(list(ranked[i])[:k]):
            if l >= 0 and l in true:
                dcg += 1.0 / math.log2(pos + 2)
        ideal = sum(1.0 / math.log2(pos + 2) for pos in range(min(k, len(true))))
        total += dcg / ideal if ideal > 0 else 0.0
    return total / len(Y)


def ref_psp(Y, ranked, k, p, normalize=True):
    num = 0.0
    den = 0.0
    for i in range(len(Y)):
        true = [j for j in range(len(Y[i])) if Y[i][j]]
        num += sum(1.0 / p[l] for l in list(ranked[i])[:k] if l >= 0 and l in true) / k
        best = sorted((1.0 / p[l] for l in true), reverse=True)[:k]
        den += sum(best) / k
    if not normalize:
        return num / len(Y)
    return num / den if den > 0 else 0.0


@st.composite
def problems(draw):
    n = draw(st.integers(1, 8))
    K = draw(st.integers(1, 9))
    k = draw(st.integers(1, 6))
    Y = draw(
        st.lists(st.lists(st.booleans(), min_size=K, max_size=K), min_size=n, max_size=n)
    )
    # Scores from a small set of values so that ties are frequent.
    S = draw(
        st.lists(
            st.lists(st.sampled_from([0.0, 0.25, 0.5, 1.0, -1.0]), min_size=K, max_size=K),
            min_size=n,
            max_size=n,
        )
    )
    p = draw(st.lists(st.floats(0.05, 1.0), min_size=K, max_size=K))
    return np.array(Y, dtype=int), np.array(S, dtype=float), k, np.array(p)


@settings(max_examples=150, deadline=None)
@given(problems())
def test_metrics_match_reference(problem):
    Y, S, k, p = problem
    ranked = [ref_ranking(list(row), k) for row in S]
    ranked = [r + [-1] * (k - len(r)) for r in ranked]
    Ylist = Y.tolist()
    Ysp = sp.csr_matrix(Y)

    exp_p = ref_precision(Ylist, ranked, k)
    exp_n = ref_ndcg(Ylist, ranked, k)
    exp_s = ref_psp(Ylist, ranked, k, p)
    exp_su = ref_psp(Ylist, ranked, k, p, normalize=False)
    for y_true in (Y, Ysp, Ysp.tocsc()):
        for y_pred in (S, sp.csr_matrix(S + 2.0), np.array(ranked, dtype=np.int64)):
            # S + 2 > 0 everywhere: the sparse matrix stores every entry.
            assert precision_at_k(y_true, y_pred, k) == pytest.approx(exp_p)
            assert ndcg_at_k(y_true, y_pred, k) == pytest.approx(exp_n)
            assert psp_at_k(y_true, y_pred, k, propensities=p) == pytest.approx(exp_s)
            assert psp_at_k(
                y_true, y_pred, k, propensities=p, normalize=False
            ) == pytest.approx(exp_su)

    P = precision_at_k(Y, S, k)
    N = ndcg_at_k(Y, S, k)
    assert 0.0 <= P <= 1.0
    assert 0.0 <= N <= 1.0 + 1e-12
    assert 0.0 <= psp_at_k(Y, S, k, propensities=p) <= 1.0 + 1e-12


@settings(max_examples=50, deadline=None)
@given(problems())
def test_perfect_ranking_scores_one(problem):
    Y, _, k, p = problem
    # Rank true labels first by decreasing 1/p: optimal for P, nDCG and PSP.
    S = Y * (10.0 + 1.0 / p)
    has_label = Y.sum(1) > 0
    if has_label.all():
        assert ndcg_at_k(Y, S, k) == pytest.approx(1.0)
    if Y.sum() > 0:
        assert psp_at_k(Y, S, k, propensities=p) == pytest.approx(1.0)
    expected = np.mean(np.minimum(Y.sum(1), k) / k)
    assert precision_at_k(Y, S, k) == pytest.approx(expected)


def test_ties_broken_by_lower_index():
    y_true = np.array([[0, 1, 0, 1]])
    scores = np.array([[0.5, 0.5, 0.5, 0.5]])
    # Top-1 is label 0 (a miss), top-2 is {0, 1}.
    assert precision_at_k(y_true, scores, 1) == 0.0
    assert precision_at_k(y_true, scores, 2) == 0.5
    assert precision_at_k(sp.csr_matrix(y_true), sp.csr_matrix(scores), 2) == 0.5
    # Reversed labels: now label 0 is true, so the lower index wins.
    assert precision_at_k(y_true[:, ::-1], scores, 1) == 1.0


def test_index_padding_and_short_predictions():
    y_true = np.array([[1, 1, 0], [0, 0, 1]])
    padded = np.array([[1, -1, -1], [2, 0, -1]])
    assert precision_at_k(y_true, padded, 3) == pytest.approx((1 / 3 + 1 / 3) / 2)
    # Fewer columns than k: the missing positions are misses.
    assert precision_at_k(y_true, padded[:, :1], 3) == pytest.approx((1 / 3 + 1 / 3) / 2)
    # A 1-D integer y_pred is one predicted label per sample.
    assert precision_at_k(y_true, np.array([0, 0]), 1) == 0.5


def test_k_larger_than_n_classes_with_scores():
    y_true = np.array([[1, 0], [1, 1]])
    scores = np.array([[0.3, 0.1], [0.2, 0.9]])
    assert precision_at_k(y_true, scores, 4) == pytest.approx((1 / 4 + 2 / 4) / 2)


@pytest.mark.parametrize("k", [10**6, 10**12])
def test_huge_k_allocates_nothing_of_its_size(k):
    # ranks past the number of labels are misses: no (n_samples, k) array
    # (10**12 raised MemoryError; 10**6 took seconds on a 3 x 4 problem)
    y_true = np.array([[1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0]])
    scores = np.array([[0.9, 0.1, 0.5, 0.2], [0.3, 0.8, 0.1, 0.0], [0.5, 0.5, 0.5, 0.5]])
    preds = (scores, sp.csr_matrix(scores), np.argsort(-scores, axis=1, kind="stable"))
    for y_pred in preds:
        assert precision_at_k(y_true, y_pred, k) == pytest.approx(3 / k / 3)
        assert ndcg_at_k(y_true, y_pred, k) == pytest.approx(2 / 3)  # perfect rows, one empty
        p = np.full(4, 0.5)
        assert psp_at_k(y_true, y_pred, k, propensities=p) == pytest.approx(1.0)
        assert psp_at_k(y_true, y_pred, k, propensities=p, normalize=False) == pytest.approx(
            3 * 2 / k / 3)


def test_sparse_scores_only_stored_entries_are_candidates():
    y_true = sp.csr_matrix(np.array([[0, 0, 1], [1, 0, 0]]))
    # Row 0 stores a negative score for label 2 only; implicit zeros are not
    # candidates, so label 2 is ranked first.
    scores = sp.csr_matrix((np.array([-1.0, 0.5]), np.array([2, 1]), np.array([0, 1, 2])), shape=(2, 3))
    assert precision_at_k(y_true, scores, 1) == 0.5
    assert precision_at_k(y_true, scores, 2) == 0.25


def test_multiclass_1d_y_true():
    y_true = np.array([0, 2, 1, 2])
    scores = np.array(
        [[0.9, 0.1, 0.0], [0.1, 0.2, 0.7], [0.5, 0.4, 0.1], [0.3, 0.3, 0.4]]
    )
    assert precision_at_k(y_true, scores, 1) == 0.75
    indicator = np.eye(3, dtype=int)[y_true]
    for k in (1, 2, 3):
        assert ndcg_at_k(y_true, scores, k) == ndcg_at_k(indicator, scores, k)
    ranked = np.array([[0], [2], [0], [2]])
    assert precision_at_k(y_true, ranked, 1) == 0.75
    assert precision_at_k(y_true, ranked, 1, n_classes=10) == 0.75
    with pytest.raises(ValueError, match="out of range"):
        precision_at_k(y_true, ranked, 1, n_classes=2)


def test_large_number_of_classes_stays_sparse():
    K = 5_000_000
    rng = np.random.RandomState(0)
    n = 200
    cols = rng.randint(0, K, size=(n, 3))
    Y = sp.csr_matrix(
        (np.ones(3 * n), cols.ravel(), np.arange(0, 3 * n + 1, 3)), shape=(n, K)
    )
    pred = np.column_stack([cols[:, 0], rng.randint(0, K, size=n)])
    pred[::2, 1] = cols[::2, 1]
    # Row i hits label cols[i,0]; even rows also hit cols[i,1] (unless a random
    # column coincides with a true label, which is negligible but handled).
    expected = np.mean(
        [len(set(pred[i]) & set(cols[i])) / 2 for i in range(n)]
    )
    assert precision_at_k(Y, pred, 2) == pytest.approx(expected)


@pytest.mark.parametrize(
    "y_true, y_pred, k, match",
    [
        (np.eye(3), np.zeros((2, 3)), 1, "different numbers of samples"),
        (np.eye(3), np.zeros((3, 4)), 1, "columns"),
        (np.eye(3), np.array([[0], [1], [3]]), 1, "out of range"),
        (np.eye(3), np.array([[0], [1], [-2]]), 1, "out of range"),
        (np.eye(3), np.array([[0, 0], [1, 2], [2, 1]]), 2, "twice"),
        (np.eye(3), np.zeros((3, 3)), 0, "k must be >= 1"),
        (np.eye(3) * 2, np.zeros((3, 3)), 1, "binary"),
        (np.zeros((2, 2, 2)), np.zeros((2, 2)), 1, "shape"),
        (np.eye(3), np.full((3, 3), np.nan), 1, "NaN"),
    ],
)
def test_bad_input_raises_value_error(y_true, y_pred, k, match):
    with pytest.raises(ValueError, match=match):
        precision_at_k(y_true, y_pred, k)


def test_bad_types_raise_type_error():
    with pytest.raises(TypeError, match="dtype"):
        precision_at_k(np.eye(2), np.array([["a"], ["b"]]), 1)
    with pytest.raises(TypeError, match="k must be"):
        precision_at_k(np.eye(2), np.eye(2), 1.5)
    with pytest.raises(TypeError, match="integer class indices"):
        precision_at_k(np.array([0.0, 1.0]), np.eye(2), 1)


def test_psp_validation():
    Y = np.eye(3)
    with pytest.raises(ValueError, match="propensities must have shape"):
        psp_at_k(Y, np.eye(3), 1, propensities=np.ones(2))
    with pytest.raises(ValueError, match="> 0"):
        psp_at_k(Y, np.eye(3), 1, propensities=np.array([1.0, 0.0, 1.0]))
    assert psp_at_k(np.zeros((2, 3)), np.eye(3)[:2], 1, propensities=np.ones(3)) == 0.0


def test_propensity_scores_formula():
    rng = np.random.RandomState(0)
    Y = (rng.rand(50, 7) < np.linspace(0.02, 0.9, 7)).astype(int)
    for A, B in [(0.55, 1.5), (0.6, 2.6), (0.5, 0.4)]:
        p = propensity_scores(sp.csr_matrix(Y), A=A, B=B)
        N = Y.shape[0]
        C = (math.log(N) - 1) * (B + 1) ** A
        expected = [
            1.0 / (1.0 + C * math.exp(-A * math.log(Y[:, l].sum() + B)))
            for l in range(Y.shape[1])
        ]
        np.testing.assert_allclose(p, expected)
        np.testing.assert_allclose(propensity_scores(Y, A=A, B=B), p)
    # More frequent labels have higher propensity.
    counts = Y.sum(0)
    p = propensity_scores(Y)
    assert np.all(np.diff(p[np.argsort(counts, kind="stable")]) >= 0)
    assert np.all((p > 0) & (p < 1))


def test_propensity_scores_errors():
    with pytest.raises(ValueError, match="at least 3"):
        propensity_scores(np.eye(2))
    with pytest.raises(ValueError, match="A must be"):
        propensity_scores(np.eye(4), A=-1)
    with pytest.raises(ValueError, match="2-D"):
        propensity_scores(np.array([0, 1, 2]))


def test_psp_normalize_must_be_a_bool():
    with pytest.raises(TypeError, match="normalize must be True or False"):
        psp_at_k(np.eye(2), np.eye(2), 1, propensities=np.ones(2), normalize="no")
