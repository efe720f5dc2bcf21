import time

import numpy as np
import pytest
import scipy.sparse as sp

from skmach.datasets import load_demo, make_extreme_classification


def test_shapes_types_and_normalisation():
    X, y = make_extreme_classification(300, 80, 25, random_state=0)
    assert sp.isspmatrix_csr(X) and X.shape == (300, 80) and X.dtype == np.float32
    assert y.shape == (300,) and y.dtype.kind == "i"
    assert y.min() >= 0 and y.max() < 25
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
    np.testing.assert_allclose(norms, 1.0, rtol=1e-5)
    assert np.all(np.diff(X.indptr) <= 20)  # at most nnz_per_sample non-zeros

    Xd, yd = make_extreme_classification(300, 80, 25, return_sparse=False, random_state=0)
    assert isinstance(Xd, np.ndarray)
    np.testing.assert_array_equal(Xd, X.toarray())
    np.testing.assert_array_equal(yd, y)


def test_multilabel():
    X, Y = make_extreme_classification(
        400, 60, 30, multilabel=True, n_labels_per_sample=3, random_state=1
    )
    assert sp.isspmatrix_csr(Y) and Y.shape == (400, 30)
    assert set(np.unique(Y.data)) == {1.0}
    per_row = np.diff(Y.indptr)
    assert per_row.min() >= 1
    assert 2.0 < per_row.mean() < 3.5  # about n_labels_per_sample, minus merged repeats
    _, Yd = make_extreme_classification(
        400, 60, 30, multilabel=True, return_sparse=False, random_state=1
    )
    np.testing.assert_array_equal(Yd, Y.toarray())


def test_deterministic_for_a_seed():
    a = make_extreme_classification(200, 50, 40, multilabel=True, random_state=3)
    b = make_extreme_classification(200, 50, 40, multilabel=True, random_state=3)
    c = make_extreme_classification(200, 50, 40, multilabel=True, random_state=4)
    assert (a[0] != b[0]).nnz == 0 and (a[1] != b[1]).nnz == 0
    assert (a[0] != c[0]).nnz > 0
    rng = np.random.RandomState(7)
    d = make_extreme_classification(100, 50, 10, random_state=rng)
    e = make_extreme_classification(100, 50, 10, random_state=np.random.RandomState(7))
    np.testing.assert_array_equal(d[1], e[1])


def test_label_frequencies_are_long_tailed():
    _, y = make_extreme_classification(20000, 200, 500, power=1.1, random_state=0)
    counts = np.bincount(y, minlength=500)
    assert counts.max() > 20 * np.median(counts)
    _, y0 = make_extreme_classification(20000, 200, 50, power=0.0, random_state=0)
    counts0 = np.bincount(y0, minlength=50)
    assert counts0.max() < 2 * np.median(counts0)  # power=0: balanced


def test_structure_is_learnable():
    """Nearest class centroid beats the majority class by a wide margin."""
    X, y = make_extreme_classification(3000, 300, 20, noise=0.2, power=0.5, random_state=0)
    Xtr, Xte, ytr, yte = X[:2000], X[2000:], y[:2000], y[2000:]
    centroids = np.vstack([np.asarray(Xtr[ytr == c].mean(axis=0)) for c in range(20)])
    pred = np.argmax(Xte @ centroids.T, axis=1)
    majority = np.bincount(ytr).max() / len(ytr)
    assert np.mean(pred == yte) > majority + 0.3


def test_scales_to_a_million_classes():
    t0 = time.perf_counter()
    X, y = make_extreme_classification(
        20_000, 50_000, 1_000_000, n_informative_per_class=5, random_state=0
    )
    assert time.perf_counter() - t0 < 20  # generous: shared CI machines
    assert X.shape == (20_000, 50_000) and y.max() < 1_000_000
    _, Y = make_extreme_classification(
        2_000, 1_000, 1_000_000, multilabel=True, n_informative_per_class=2, random_state=0
    )
    assert Y.shape == (2_000, 1_000_000) and sp.issparse(Y)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"n_samples": 0}, ValueError, "n_samples"),
        ({"n_classes": 2.5}, TypeError, "n_classes"),
        ({"noise": 1.5}, ValueError, "noise"),
        ({"power": -1}, ValueError, "power"),
        ({"n_informative_per_class": 2000}, ValueError, "exceeds n_features"),
        ({"n_labels_per_sample": 0.5}, ValueError, "n_labels_per_sample"),
        ({"n_labels_per_sample": float("inf"), "multilabel": True}, ValueError,
         "n_labels_per_sample must be a finite"),
        ({"power": float("nan")}, ValueError, "power must be a finite"),
        ({"nnz_per_sample": 0}, ValueError, "nnz_per_sample"),
    ],
)
def test_parameter_validation(kwargs, error, match):
    with pytest.raises(error, match=match):
        make_extreme_classification(**kwargs)


def test_load_demo():
    X_train, X_test, y_train, y_test = load_demo()
    assert X_train.shape == (4500, 2000) and X_test.shape == (1500, 2000)
    assert y_train.shape == (4500,) and y_test.shape == (1500,)
    X, y = load_demo(return_split=False)
    assert (X[:4500] != X_train).nnz == 0
    np.testing.assert_array_equal(y[4500:], y_test)
    again = load_demo()
    np.testing.assert_array_equal(again[2], y_train)
    counts = np.bincount(y, minlength=500)
    assert counts.max() > 20 * np.median(counts)
